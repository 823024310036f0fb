"""Composite primary keys on the source table against a real MariaDB: chunking, checkpoint, resume and verify.

memberships (member_id, item_id) -> holdings with the same two-column key (UNIQUE) and an AUTO_INCREMENT id; old-
version writers race the whole module run, the new version writes holdings once it has finished.  A same-table
alter_column on the composite-keyed table races the same writers.
"""
import json
import random
import threading
import time

import pymysql
import pytest

from zdt_lab.modules import start_module
from zdt_lab.sync_races import kill_when, wait_lock_released

from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_apply import apply_phase
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_runner import sync_present

MIGRATION = {
    'id': 60, 'description': 'Holdings keyed like memberships',
    'expand': [{'alter_column': {'table': 'memberships', 'column': 'label', 'rename_to': 'label_uc', 'up': 'UPPER(label)'}}],
    'sync': [{'from': {'table': 'memberships', 'key': ['member_id', 'item_id'], 'columns': ['note', 'qty']},
              'to': {'table': 'holdings', 'key': ['member_id', 'item_id'], 'columns': ['note', 'qty']}}]}


def execute(conn, sql, args=None):
    with conn.cursor() as cur:
        n = cur.execute(sql, args)
        return n if sql.lstrip().upper().startswith(('UPDATE', 'DELETE')) else cur.fetchall()


def create(conn, rows):
    execute(conn, 'CREATE TABLE memberships (member_id INT NOT NULL, item_id INT NOT NULL, note VARCHAR(50), qty INT, '
                  'label VARCHAR(20), PRIMARY KEY (member_id, item_id))')
    execute(conn, "INSERT INTO memberships SELECT seq DIV 7, seq MOD 7, IF(seq %% 5 = 0, NULL, CONCAT('n', seq)), "
                  "IF(seq %% 3 = 0, NULL, seq), CONCAT('l', seq) FROM seq_1_to_%d" % rows)
    execute(conn, 'CREATE TABLE holdings (id INT AUTO_INCREMENT PRIMARY KEY, member_id INT NOT NULL, item_id INT NOT NULL, '
                  'note VARCHAR(50), qty INT, UNIQUE KEY holdings_key (member_id, item_id))')


def snapshot(conn):
    old = dict(((r[0], r[1]), tuple(r[2:])) for r in execute(conn, 'SELECT member_id, item_id, note, qty, label, label_uc FROM memberships'))
    new = dict(((r[0], r[1]), tuple(r[2:])) for r in execute(conn, 'SELECT member_id, item_id, note, qty FROM holdings'))
    return old, new


def expected(model):
    """Both tables as the model says: holdings holds (note, qty) when either is set; label_uc is UPPER(label)."""
    old = dict((k, (v[0], v[1], v[2], None if v[2] is None else v[2].upper())) for k, v in model.items())
    new = dict((k, v[:2]) for k, v in model.items() if v[:2] != (None, None))
    return old, new


def race(db, model, seed, stop, new_version, errors, counter):
    rng = random.Random(seed)
    lock = threading.Lock()

    def run(version):
        conn = db.connect()
        while not stop.is_set():
            if version == 'new' and not new_version.is_set():
                time.sleep(0.01)
                continue
            try:
                with lock:
                    step(conn, version)
                    counter[0] += 1
            except pymysql.err.OperationalError as exc:
                if exc.args[0] not in (1205, 1213):
                    errors.append(exc)
            except Exception as exc:  # surfaced by the test
                errors.append(exc)
                return

    def step(conn, version):
        key = rng.choice(list(model))
        values = ('w%d' % rng.randrange(10 ** 6) if rng.random() < 0.7 else None, rng.choice([None, rng.randrange(1000)]))
        r = rng.random()
        if version == 'old':
            if r < 0.1:
                execute(conn, 'DELETE FROM memberships WHERE member_id = %s AND item_id = %s', key)
                del model[key]
            elif r < 0.25:
                key = (10 ** 5 + rng.randrange(10 ** 4), rng.randrange(7))
                if key in model:
                    return
                label = 'x%d' % rng.randrange(100)
                execute(conn, 'INSERT INTO memberships (member_id, item_id, note, qty, label) VALUES (%s, %s, %s, %s, %s)',
                        key + values + (label,))
                model[key] = values + (label,)
            else:
                label = 'y%d' % rng.randrange(100)
                execute(conn, 'UPDATE memberships SET note = %s, qty = %s, label = %s WHERE member_id = %s AND item_id = %s',
                        values + (label,) + key)
                model[key] = values + (label,)
            return
        values = ('v%d' % rng.randrange(10 ** 6), rng.randrange(1000))
        if model[key][:2] == (None, None):
            execute(conn, 'INSERT INTO holdings (member_id, item_id, note, qty) VALUES (%s, %s, %s, %s)', key + values)
        elif r < 0.2:
            execute(conn, 'DELETE FROM holdings WHERE member_id = %s AND item_id = %s', key)
            values = (None, None)
        else:
            assert execute(conn, 'UPDATE holdings SET note = %s, qty = %s WHERE member_id = %s AND item_id = %s', values + key) == 1
        model[key] = values + model[key][2:]

    threads = [threading.Thread(target=run, args=(v,), daemon=True) for v in ('old', 'old', 'new')]
    for t in threads:
        t.start()
    return threads


@pytest.mark.parametrize('run', range(2))
def test_composite_key_exact_with_writers_of_both_versions(db, run):
    conn = db.connect()
    create(conn, 4000)
    model = dict(((r[0], r[1]), tuple(r[2:])) for r in execute(conn, 'SELECT member_id, item_id, note, qty, label FROM memberships'))
    stop, new_version, errors, counter = threading.Event(), threading.Event(), [], [0]
    threads = race(db, model, run, stop, new_version, errors, counter)
    try:
        time.sleep(0.2)
        apply_phase(db.connect(), parse_migration(MIGRATION), 'expand', db.name)
        planned = sync_present(db.connect(), db.name, parse_migration(MIGRATION), check_mode=True)
        assert planned['changed'] and planned['backfill']['rows_total'] >= 8000 and execute(conn, 'SHOW TRIGGERS') == ()
        result = sync_present(db.connect(), db.name, parse_migration(MIGRATION), chunk_size=50, chunk_time=0.005)
        assert result['verify']['mismatches'] == 0 and result['backfill']['chunks'] >= 20
        assert [e['backfill']['strategy'] for e in result['entries']] == ['values', 'update']
        new_version.set()
        time.sleep(0.5)
        again = sync_present(db.connect(), db.name, parse_migration(MIGRATION))
        assert again['changed'] is False and again['verify']['mismatches'] == 0
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert errors == [] and counter[0] > 300
    assert snapshot(conn) == expected(model)


def test_composite_key_kill_mid_backfill_then_resume(db, run_module):
    conn = db.connect()
    create(conn, 40000)
    assert not run_module('mysql_expand', dict(db.params, migration=MIGRATION)).get('failed')
    proc, path = start_module('mysql_trigger_sync', dict(db.params, migration=MIGRATION, chunk_size=50, chunk_time=0.002))
    kill_when(proc, path, lambda: run_module('mysql_sync_info', dict(db.params, migration=MIGRATION))['sync'][0]['backfill']['rows_done'] >= 2000)
    wait_lock_released(conn, 'zdt_backfill_%s_60' % db.name)
    checkpoint = execute(conn, 'SELECT last_key FROM zdt_sync_progress WHERE migration_id = 60 AND sync_index = 0')[0][0]
    assert len(json.loads(checkpoint)['key']) == 2
    res = run_module('mysql_trigger_sync', dict(db.params, migration=MIGRATION))
    assert not res.get('failed'), res
    assert res['backfill']['resumed_from'] == json.loads(checkpoint)['key']
    assert res['verify']['mismatches'] == 0 and res['verify']['rows_checked'] == 2 * 40000
    model = dict(((r[0], r[1]), tuple(r[2:])) for r in execute(conn, 'SELECT member_id, item_id, note, qty, label FROM memberships'))
    assert snapshot(conn) == expected(model)
