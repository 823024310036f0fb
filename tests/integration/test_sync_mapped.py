"""Mapped columns of a cross-table sync entry against a real MariaDB: people.full_name split into names.first_name and
names.last_name, people.email lower-cased into names.email_lc (a transform that does not round-trip).

Old-version writers race the whole module run (forward triggers, backfill, backward triggers, verify); the new version
writes the new table once the module has finished, as it does in an upgrade, while the old version keeps writing; the
model holds what every acknowledged write must have left in both tables.
"""
import random
import threading
import time

import pymysql
import pytest

from zdt_lab.modules import start_module
from zdt_lab.sync_races import kill_when, wait_lock_released

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_runner import sync_present

MIGRATION = {'id': 50, 'description': 'Split names', 'sync': [{
    'from': {'table': 'people', 'key': 'id'},
    'to': {'table': 'names', 'key': 'person_id'},
    'columns': [
        {'from': 'full_name', 'to': 'first_name', 'up': "SUBSTRING_INDEX(full_name, ' ', 1)",
         'down': "CONCAT_WS(' ', first_name, last_name)"},
        {'from': 'full_name', 'to': 'last_name', 'up': "SUBSTRING_INDEX(full_name, ' ', -1)"},
        {'from': 'email', 'to': 'email_lc', 'up': 'LOWER(email)'}]}]}


def execute(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.rowcount if sql.lstrip().upper().startswith(('UPDATE', 'DELETE')) else cur.fetchall()


def create(conn, rows):
    execute(conn, 'CREATE TABLE people (id INT AUTO_INCREMENT PRIMARY KEY, full_name VARCHAR(100), email VARCHAR(100), age INT)')
    execute(conn, "INSERT INTO people (id, full_name, email) SELECT seq, IF(seq %% 9 = 0, NULL, CONCAT('First', seq, ' Last', seq)), "
                  "IF(seq %% 4 = 0, NULL, CONCAT('Mail', seq, '@Example.ORG')) FROM seq_1_to_%d" % rows)
    execute(conn, 'CREATE TABLE names (id INT AUTO_INCREMENT PRIMARY KEY, person_id INT NOT NULL, first_name VARCHAR(50), '
                  'last_name VARCHAR(50), email_lc VARCHAR(100), UNIQUE KEY names_person (person_id))')


def up(old):
    full, email = old
    if full is None and email is None:
        return None
    first = None if full is None else full.split(' ')[0]
    last = None if full is None else full.split(' ')[-1]
    return (first, last, None if email is None else email.lower())


UNFILLED = 'unfilled'   # a row no write touched since the triggers exist: the backfill makes its new row up() of the old one


def current_new(entry):
    old, new = entry
    return up(old) if new is UNFILLED else new


def down(new):
    first, last, email_lc = new
    return (' '.join(v for v in (first, last) if v is not None), email_lc)


class Writers:
    """Old- and new-version writers sharing one model; a lock around each statement makes model order commit order."""

    def __init__(self, db, model, seed):
        self.db, self.model = db, model
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.new_version = threading.Event()
        self.stop = threading.Event()
        self.errors, self.ops = [], 0
        self.next_id = 10 ** 6

    def token(self, prefix):
        return '%s%d' % (prefix, self.rng.randrange(10 ** 6))

    def run(self, version):
        conn = self.db.connect()
        while not self.stop.is_set():
            if version == 'new' and not self.new_version.is_set():
                time.sleep(0.01)
                continue
            try:
                with self.lock:
                    self.step(conn, version)
                    self.ops += 1
            except pymysql.err.OperationalError as exc:
                if exc.args[0] not in (1205, 1213):
                    self.errors.append(exc)
            except Exception as exc:  # surfaced by the test
                self.errors.append(exc)
                return

    def step(self, conn, version):
        key = self.rng.choice(list(self.model))
        r = self.rng.random()
        if version == 'old':
            full = None if self.rng.random() < 0.2 else '%s %s' % (self.token('Ann'), self.token('Lee'))
            email = None if self.rng.random() < 0.2 else '%s@Mail.Org' % self.token('U')
            if r < 0.1:
                execute(conn, 'DELETE FROM people WHERE id = %s', (key,))
                del self.model[key]
            elif r < 0.25:
                key, self.next_id = self.next_id, self.next_id + 1
                execute(conn, 'INSERT INTO people (id, full_name, email) VALUES (%s, %s, %s)', (key, full, email))
                self.model[key] = ((full, email), up((full, email)))
            elif r < 0.35:
                execute(conn, 'UPDATE people SET age = %s WHERE id = %s', (self.rng.randrange(99), key))   # no synced column
            else:
                execute(conn, 'UPDATE people SET full_name = %s, email = %s WHERE id = %s', (full, email, key))
                self.model[key] = ((full, email), up((full, email)))
            return
        new = (self.token('Bo'), None if self.rng.random() < 0.3 else self.token('Ray'), '%s@MixedCase.Org' % self.token('N'))
        if current_new(self.model[key]) is None:
            execute(conn, 'INSERT INTO names (person_id, first_name, last_name, email_lc) VALUES (%s, %s, %s, %s)', (key,) + new)
            self.model[key] = (down(new), new)
        elif r < 0.2:
            execute(conn, 'DELETE FROM names WHERE person_id = %s', (key,))
            self.model[key] = ((None, None), None)
        else:
            assert execute(conn, 'UPDATE names SET first_name = %s, last_name = %s, email_lc = %s WHERE person_id = %s', new + (key,)) == 1
            self.model[key] = (down(new), new)


def differences(conn, model):
    people = dict((r[0], (r[1], r[2])) for r in execute(conn, 'SELECT id, full_name, email FROM people'))
    names = dict((r[0], tuple(r[1:])) for r in execute(conn, 'SELECT person_id, first_name, last_name, email_lc FROM names'))
    found = dict((k, (people.get(k), names.get(k))) for k in set(people) | set(names))
    want = dict((k, (entry[0], current_new(entry))) for k, entry in model.items())
    wrong = sorted(k for k in set(found) | set(want) if found.get(k) != want.get(k))
    return dict((k, dict(found=found.get(k), want=want.get(k))) for k in wrong[:5])


@pytest.mark.parametrize('run', range(2))
def test_split_and_transform_exact_with_writers_of_both_versions(db, run):
    conn = db.connect()
    create(conn, 3000)
    model = dict((r[0], ((r[1], r[2]), UNFILLED)) for r in execute(conn, 'SELECT id, full_name, email FROM people'))
    writers = Writers(db, model, run)
    threads = [threading.Thread(target=writers.run, args=(v,), daemon=True) for v in ('old', 'old', 'new')]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)
        planned = sync_present(db.connect(), db.name, parse_migration(MIGRATION), check_mode=True)
        assert planned['changed'] and len(planned['created']) == 6 and execute(conn, 'SHOW TRIGGERS') == ()
        result = sync_present(db.connect(), db.name, parse_migration(MIGRATION), chunk_size=50, chunk_time=0.005)
        assert result['verify']['mismatches'] == 0 and result['backfill']['chunks'] >= 10
        assert result['entries'][0]['backfill']['strategy'] == 'values'
        writers.new_version.set()       # the new version starts once the module has finished
        time.sleep(0.5)
        again = sync_present(db.connect(), db.name, parse_migration(MIGRATION))
        assert again['changed'] is False and again['verify']['mismatches'] == 0
        time.sleep(0.2)
    finally:
        writers.stop.set()
        for t in threads:
            t.join(10)
    assert writers.errors == [] and writers.ops > 300
    assert differences(conn, model) == {}


def test_mapped_expressions_and_rules_fail_naming_the_pair(db):
    conn = db.connect()
    create(conn, 10)

    def refused(columns, **entry):
        mig = dict(MIGRATION, sync=[dict(MIGRATION['sync'][0], columns=columns, **entry)])
        with pytest.raises(SpecError) as err:
            sync_present(db.connect(), db.name, parse_migration(mig))
        return err.value.field

    pairs = MIGRATION['sync'][0]['columns']
    assert refused([pairs[0], pairs[1], dict(pairs[2], up='LOWER(mail)')]) == 'sync[0].columns[2].up'
    assert refused([dict(pairs[0], down='CONCAT(first_name, surname)'), pairs[1], pairs[2]]) == 'sync[0].columns[0].down'
    assert refused([pairs[0], pairs[1], dict(pairs[2], to='nope')]) == 'sync[0].columns[2].to'
    # without down the new version's value is copied back: it must fit the old column
    execute(conn, 'ALTER TABLE people ADD COLUMN nick VARCHAR(5) NULL')
    assert refused([{'from': 'nick', 'to': 'last_name', 'up': 'UPPER(nick)'}]) == 'sync[0].columns[0].down'
    assert execute(conn, 'SHOW TRIGGERS') == ()
    with pytest.raises(SpecError) as err:
        parse_migration(dict(MIGRATION, sync=[dict(MIGRATION['sync'][0], columns=[pairs[0], dict(pairs[1], down='last_name')])]))
    assert err.value.field == 'sync[0].columns[1].down'


def test_kill_mid_backfill_then_resume_exact(db, run_module):
    conn = db.connect()
    create(conn, 30000)
    proc, path = start_module('mysql_trigger_sync', dict(db.params, migration=MIGRATION, chunk_size=50, chunk_time=0.002))
    kill_when(proc, path, lambda: run_module('mysql_sync_info', dict(db.params, migration=MIGRATION))['sync'][0]['backfill']['rows_done'] >= 2000)
    wait_lock_released(conn, 'zdt_backfill_%s_50' % db.name)
    res = run_module('mysql_trigger_sync', dict(db.params, migration=MIGRATION))
    assert not res.get('failed'), res
    assert res['backfill']['resumed_from'] is not None and 0 < res['backfill']['rows_copied'] < 30000
    assert res['verify']['mismatches'] == 0 and res['verify']['rows_checked'] == 30000
    model = dict((r[0], ((r[1], r[2]), UNFILLED)) for r in execute(conn, 'SELECT id, full_name, email FROM people'))
    assert differences(conn, model) == {}
