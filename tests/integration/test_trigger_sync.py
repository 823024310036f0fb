"""mysql_trigger_sync / mysql_sync_info against a real MariaDB: exactness under concurrent writes.

The race tests run writer threads (inserts, updates incl. to NULL, deletes, re-inserts of deleted
keys, and - once the backward triggers exist - writes through the new shape) during the whole
trigger creation + backfill + verify, keep an exact model of every acknowledged write, and then
compare both tables to the model row by row.  Small chunks make chunk boundaries race often.
"""
import json
import os
import threading
import time

import pymysql
import pytest

from zdt_lab import REPO_ROOT
from zdt_lab.modules import start_module
from zdt_lab.sync_races import (
    SAME, SEED, create_items, create_users, cross_differences, cross_race, execute, expected_addresses, kill_when, snapshot_cross,
    start_writers, stop_writers, wait_lock_released)

from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_backfill import foreign_key_checks_redundant
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_inspect import inspect_all
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_runner import sync_present


# ------------------------------------------------------------------------------------------ race tests

@pytest.mark.parametrize('target,run', [('autoinc', r) for r in range(5)] + [('no-autoinc', r) for r in range(5)])
def test_cross_table_backfill_exact_under_concurrent_writes(db, target, run):
    result, model, ops = cross_race(db, sync, autoinc=(target == 'autoinc'), seed=run)
    assert result['backfill']['chunks'] >= 10
    assert result['backfill']['rows_total'] > 9000
    assert result['entries'][0]['backfill']['strategy'] == ('values' if target == 'autoinc' else 'select')
    assert result['verify']['mismatches'] == 0
    assert ops > 500
    conn = db.connect()
    assert cross_differences(conn, model) == {}
    # the new version can still insert (AUTO_INCREMENT moved on, no key collision)
    execute(conn, "INSERT INTO users (id, name) VALUES (3000000, 'v2user')")
    execute(conn, "INSERT INTO addresses (user_id, address_line_1) VALUES (3000000, 'v2 street')")
    assert execute(conn, 'SELECT address_line_1 FROM users WHERE id = 3000000') == (('v2 street',),)


@pytest.mark.parametrize('target,run', [('autoinc', r) for r in range(3)] + [('no-autoinc', r) for r in range(3)])
def test_module_path_exact_under_concurrent_writes(db, target, run):
    """One sync_present as the module runs it: forward triggers, backfill, backward triggers, verify, with
    old-shape writers racing the whole call (the new version writes only after the module has finished)."""
    result, model, ops = cross_race(db, sync, autoinc=(target == 'autoinc'), seed=50 + run, module_path=True)
    assert result['backfill']['chunks'] >= 10 and result['verify']['mismatches'] == 0
    assert ops > 500
    assert cross_differences(db.connect(), model) == {}


def sync(conn, database, migration, **args):
    """sync_present with a migration given as a dict (the race helpers' signature)."""
    return sync_present(conn, database, parse_migration(migration), **args)


TRICKY_VALUES = ["back\\slash", "it's", 'dq"', 'nul\x00byte', 'ctrl-z\x1a', 'tab\tnew\nline', 'trailing  ', 'emoji \U0001F600',
                 "\\' OR 1=1 -- ", 'ünïcödé', '']


@pytest.mark.parametrize('autoinc', [True, False])
def test_backfill_copies_every_string_exactly_whatever_the_sql_mode(db, autoinc):
    """Backslashes, quotes, NUL, ^Z, unicode, trailing spaces and the empty string survive the copy byte for byte,
    also when the session's sql_mode has NO_BACKSLASH_ESCAPES (the 'values' strategy builds literals)."""
    conn = db.connect()
    create_users(conn, 0, autoinc=autoinc)
    for i, value in enumerate(TRICKY_VALUES, start=1):
        execute(conn, 'INSERT INTO users (id, name, address_line_1, address_line_2) VALUES (%s, %s, %s, %s)', (i, 'u', value, value[::-1]))
    copy_conn = db.connect()
    execute(copy_conn, "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES')")
    result = sync_present(copy_conn, db.name, parse_migration(SEED))
    assert result['entries'][0]['backfill']['strategy'] == ('values' if autoinc else 'select')
    assert result['verify']['mismatches'] == 0
    got = execute(conn, 'SELECT user_id, HEX(address_line_1), HEX(address_line_2) FROM addresses ORDER BY user_id')
    want = execute(conn, 'SELECT id, HEX(address_line_1), HEX(address_line_2) FROM users ORDER BY id')
    assert got == want and len(got) == len(TRICKY_VALUES)


def test_rows_left_in_the_new_table_before_the_sync_are_reconciled(db, run_module):
    """A sync created again over a new table that still holds rows (stale values, orphans, rows for all-NULL
    users) leaves exactly the rows the old shape implies."""
    conn = db.connect()
    create_users(conn, 200)
    execute(conn, "INSERT INTO addresses (user_id, address_line_1) SELECT id, 'stale' FROM users WHERE id <= 150")
    execute(conn, 'UPDATE users SET address_line_1 = NULL, address_line_2 = NULL WHERE id BETWEEN 10 AND 19')
    execute(conn, 'SET FOREIGN_KEY_CHECKS = 0')
    execute(conn, "INSERT INTO addresses (user_id, address_line_1) VALUES (5000, 'orphan')")
    execute(conn, 'SET FOREIGN_KEY_CHECKS = 1')
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SEED, chunk_size=20))
    assert not res.get('failed'), res
    assert res['verify']['mismatches'] == 0
    users, addrs = snapshot_cross(conn)
    assert addrs == expected_addresses(users)


@pytest.mark.parametrize('autoinc', [True, False])
def test_copy_skips_foreign_key_checks_only_when_its_locks_make_them_redundant(db, autoinc):
    """The seed's shape (the only FK is to.key -> from.key, nothing references the new table, no foreign trigger)
    copies without FK checks; any other FK, a table referencing the new one or a user's trigger keeps them on."""
    conn = db.connect()
    create_users(conn, 50, autoinc=autoinc)
    mig = parse_migration(SEED)

    def redundant():
        return foreign_key_checks_redundant(conn, db.name, inspect_all(conn, db.name, mig)[0])

    assert redundant() is True
    execute(conn, 'CREATE TABLE countries (code CHAR(2) PRIMARY KEY)')
    execute(conn, 'ALTER TABLE addresses ADD country CHAR(2) NULL, ADD CONSTRAINT addresses_country_fk FOREIGN KEY (country) REFERENCES countries (code)')
    assert redundant() is False
    execute(conn, 'ALTER TABLE addresses DROP FOREIGN KEY addresses_country_fk')
    assert redundant() is True
    execute(conn, 'CREATE TRIGGER addresses_audit AFTER INSERT ON addresses FOR EACH ROW SET @seen = NEW.user_id')
    assert redundant() is False
    execute(conn, 'DROP TRIGGER addresses_audit')
    execute(conn, 'CREATE TABLE notes (id INT PRIMARY KEY, user_id INT NOT NULL, '
                  'CONSTRAINT notes_fk FOREIGN KEY (user_id) REFERENCES addresses (user_id) ON DELETE CASCADE)')
    assert redundant() is False
    # ... and the copy behaves so: an orphan the backfill deletes takes its note with it (the cascade ran)
    execute(conn, 'SET FOREIGN_KEY_CHECKS = 0')
    execute(conn, "INSERT INTO addresses (user_id, address_line_1) VALUES (5000, 'orphan')")
    execute(conn, 'SET FOREIGN_KEY_CHECKS = 1')
    execute(conn, "INSERT INTO addresses (user_id, address_line_1) VALUES (1, 'stale')")
    execute(conn, 'INSERT INTO notes VALUES (1, 5000), (2, 1)')
    copy_conn = db.connect()
    result = sync_present(copy_conn, db.name, mig)
    assert result['verify']['mismatches'] == 0
    assert execute(conn, 'SELECT id FROM notes ORDER BY id') == ((2,),)
    assert execute(copy_conn, 'SELECT @@SESSION.foreign_key_checks') == ((1,),)
    users, addrs = snapshot_cross(conn)
    assert addrs == expected_addresses(users)


def test_copy_without_foreign_key_checks_leaves_the_session_as_it_was(db):
    conn = db.connect()
    create_users(conn, 500)
    copy_conn = db.connect()
    result = sync_present(copy_conn, db.name, parse_migration(SEED), chunk_size=50, chunk_time=0.01)
    assert result['backfill']['chunks'] > 1 and result['verify']['mismatches'] == 0
    assert execute(copy_conn, 'SELECT @@SESSION.foreign_key_checks, @zdt_copy_m2_s0') == ((1, None),)
    users, addrs = snapshot_cross(conn)
    assert addrs == expected_addresses(users)
    # the FK is still enforced for everybody afterwards
    with pytest.raises(pymysql.err.IntegrityError):
        execute(conn, "INSERT INTO addresses (user_id, address_line_1) VALUES (999999, 'no such user')")


@pytest.mark.parametrize('run', range(3))
def test_same_table_backfill_exact_under_concurrent_writes(db, run):
    conn = db.connect()
    create_items(conn, 10000)
    initial = dict((r[0], (r[1], r[2])) for r in execute(conn, 'SELECT id, old_name, qty FROM items'))
    backward = threading.Event()
    writers = start_writers(db, initial, 'same', 100 + run, backward)
    try:
        time.sleep(0.2)
        mig = parse_migration(SAME)
        sync_present(db.connect(), db.name, mig, backfill=False, verify=False)
        backward.set()
        time.sleep(0.2)
        result = sync_present(db.connect(), db.name, mig, chunk_size=50, chunk_time=0.005)
        time.sleep(0.3)
    finally:
        model = stop_writers(writers)
    assert result['backfill']['chunks'] >= 10 and result['verify']['mismatches'] == 0
    rows = execute(conn, 'SELECT id, old_name, qty, new_name, quantity FROM items')
    got_old = dict((r[0], (r[1], r[2])) for r in rows)
    got_new = dict((r[0], (r[3], r[4])) for r in rows)
    assert got_old == model
    assert got_new == model


# ------------------------------------------------------------------------------------------ semantics

def test_both_directions_and_null_semantics(db, run_module):
    conn = db.connect()
    create_users(conn, 10)
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SEED))
    assert not res.get('failed'), res
    assert res['changed'] and res['backfill']['rows_copied'] == 10 and res['verify']['mismatches'] == 0
    assert all(n.startswith('zdt_') for n in res['triggers'])
    # forward: insert, update, all-NULL deletes, setting one again re-creates, delete user deletes address
    execute(conn, "INSERT INTO users (id, name, address_line_1) VALUES (100, 'a', 'one')")
    assert execute(conn, 'SELECT address_line_1, address_line_2 FROM addresses WHERE user_id = 100') == (('one', None),)
    execute(conn, 'UPDATE users SET address_line_1 = NULL WHERE id = 100')
    assert execute(conn, 'SELECT COUNT(*) FROM addresses WHERE user_id = 100') == ((0,),)
    execute(conn, "UPDATE users SET address_line_2 = 'two' WHERE id = 100")
    assert execute(conn, 'SELECT address_line_1, address_line_2 FROM addresses WHERE user_id = 100') == ((None, 'two'),)
    execute(conn, "UPDATE users SET address_line_2 = 'TWO' WHERE id = 100")   # case-only change is a change
    assert execute(conn, 'SELECT address_line_2 FROM addresses WHERE user_id = 100') == (('TWO',),)
    execute(conn, "UPDATE users SET address_line_2 = 'TWO ' WHERE id = 100")  # a trailing-space change is a change
    assert execute(conn, 'SELECT address_line_2 FROM addresses WHERE user_id = 100') == (('TWO ',),)
    execute(conn, 'DELETE FROM users WHERE id = 100')
    assert execute(conn, 'SELECT COUNT(*) FROM addresses WHERE user_id = 100') == ((0,),)
    # backward: insert an address for a user without one, update, delete -> NULLs
    execute(conn, "UPDATE users SET address_line_1 = NULL, address_line_2 = NULL WHERE id = 1")
    execute(conn, "INSERT INTO addresses (user_id, address_line_1, address_line_2) VALUES (1, 'b1', 'b2')")
    assert execute(conn, 'SELECT address_line_1, address_line_2 FROM users WHERE id = 1') == (('b1', 'b2'),)
    execute(conn, "UPDATE addresses SET address_line_2 = 'c2' WHERE user_id = 1")
    assert execute(conn, 'SELECT address_line_1, address_line_2 FROM users WHERE id = 1') == (('b1', 'c2'),)
    execute(conn, "UPDATE addresses SET address_line_2 = 'C2' WHERE user_id = 1")   # case-only change, backward
    assert execute(conn, 'SELECT address_line_1, address_line_2 FROM users WHERE id = 1') == (('b1', 'C2'),)
    execute(conn, 'DELETE FROM addresses WHERE user_id = 1')
    assert execute(conn, 'SELECT address_line_1, address_line_2 FROM users WHERE id = 1') == ((None, None),)
    # multi-row statements on both sides
    execute(conn, "UPDATE users SET address_line_1 = CONCAT('m', id) WHERE id BETWEEN 2 AND 6")
    execute(conn, "UPDATE addresses SET address_line_2 = 'multi' WHERE user_id BETWEEN 2 AND 4")
    users, addrs = snapshot_cross(conn)
    assert addrs == expected_addresses(users)
    again = run_module('mysql_trigger_sync', dict(db.params, migration=SEED))
    assert not again.get('failed') and again['changed'] is False and again['verify']['mismatches'] == 0


def test_a_cascade_to_a_same_named_table_of_another_schema_does_not_replace_the_delete_trigger(db, run_module, mariadb):
    # addresses cascades from <other>.users, not from this database's users: deleting one of our users
    # must still delete its address through our forward delete trigger
    other = db.name + '_other'
    mariadb.create_database(other)
    conn = db.connect()
    try:
        create_users(conn, 5, autoinc=False)
        execute(conn, 'CREATE TABLE `%s`.users (id INT PRIMARY KEY) ENGINE=InnoDB' % other)
        execute(conn, 'INSERT INTO `%s`.users (id) SELECT seq FROM seq_1_to_5' % other)
        execute(conn, 'ALTER TABLE addresses DROP FOREIGN KEY addresses_fk')
        execute(conn, 'ALTER TABLE addresses ADD CONSTRAINT addresses_other_fk FOREIGN KEY (user_id) REFERENCES `%s`.users (id) '
                      'ON DELETE CASCADE' % other)
        res = run_module('mysql_trigger_sync', dict(db.params, migration=dict(SEED, sync=[dict(SEED['sync'][0], direction='forward')])))
        assert not res.get('failed'), res
        assert 'zdt_m2_s0_fwd_del' in res['triggers']
        execute(conn, 'DELETE FROM users WHERE id = 1')
        assert execute(conn, 'SELECT COUNT(*) FROM addresses WHERE user_id = 1') == ((0,),)
        users, addrs = snapshot_cross(conn)
        assert addrs == expected_addresses(users)
    finally:
        execute(conn, 'DROP TABLE IF EXISTS addresses')
        execute(conn, 'DROP DATABASE `%s`' % other)


@pytest.mark.parametrize('autoinc', [True, False])
def test_trigger_writes_of_missing_new_rows_neither_wait_for_nor_deadlock_each_other(db, autoinc):
    """Users not copied yet share one gap of the new table's key index. Two REPEATABLE READ application
    transactions that give such users an address must not lock that gap: a forward trigger that first
    UPDATEs the missing row takes a gap lock there, and then each one's insert waits for the other's."""
    conn = db.connect()
    create_users(conn, 30, autoinc=autoinc)
    sync_present(db.connect(), db.name, parse_migration(SEED), backfill=False, verify=False)
    first, second = db.connect(), db.connect()
    for c in (first, second):
        execute(c, 'SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ')
        execute(c, 'SET SESSION innodb_lock_wait_timeout = 5')
    execute(first, 'BEGIN')
    execute(first, "UPDATE users SET address_line_1 = 'first 15' WHERE id = 15")
    outcome = {}

    def write(conn_, name, sql):
        try:
            execute(conn_, sql)
            outcome[name] = 'ok'
        except pymysql.err.MySQLError as exc:
            outcome[name] = exc.args[0]

    other = threading.Thread(target=write, args=(second, 'second', "UPDATE users SET address_line_1 = 'second 13' WHERE id = 13"))
    other.start()
    other.join(2)
    second_waited = other.is_alive()
    write(first, 'first', "UPDATE users SET address_line_1 = 'first 12' WHERE id = 12")
    if outcome['first'] == 'ok':
        execute(first, 'COMMIT')
    other.join(10)
    assert (outcome, second_waited) == ({'first': 'ok', 'second': 'ok'}, False)
    users, addrs = snapshot_cross(conn)
    assert addrs == dict((k, users[k]) for k in (12, 13, 15))


def test_same_table_precedence(db, run_module):
    conn = db.connect()
    create_items(conn, 5)
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SAME))
    assert not res.get('failed') and res['verify']['mismatches'] == 0, res
    execute(conn, "INSERT INTO items (id, new_name, quantity) VALUES (50, 'fromnew', 3)")      # non-NULL side wins
    execute(conn, "INSERT INTO items (id, old_name, qty, new_name, quantity) VALUES (51, 'o', 1, 'n', 2)")  # both: from wins
    execute(conn, "UPDATE items SET new_name = 'v2' WHERE id = 1")                             # changed side wins
    execute(conn, "UPDATE items SET old_name = 'a', new_name = 'b' WHERE id = 2")              # both changed: from wins
    execute(conn, "UPDATE items SET old_name = 'ITEM3' WHERE id = 3")
    rows = dict((r[0], r[1:]) for r in execute(conn, 'SELECT id, old_name, qty, new_name, quantity FROM items'))
    assert rows[50] == ('fromnew', 3, 'fromnew', 3)
    assert rows[51] == ('o', 1, 'o', 1)
    assert rows[1][0] == rows[1][2] == 'v2'
    assert rows[2][0] == rows[2][2] == 'a'
    assert rows[3][0] == rows[3][2] == 'ITEM3'


def test_same_table_backfill_keeps_the_non_null_side(db, run_module):
    """Rows that already had a value only in the new column before the sync keep it on both sides."""
    conn = db.connect()
    create_items(conn, 20)
    execute(conn, "UPDATE items SET old_name = NULL, new_name = 'only new' WHERE id = 7")   # item 7 had old_name NULL already
    execute(conn, "UPDATE items SET new_name = 'differs' WHERE id = 8")
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SAME))
    assert not res.get('failed') and res['verify']['mismatches'] == 0, res
    rows = dict((r[0], r[1:]) for r in execute(conn, 'SELECT id, old_name, new_name FROM items'))
    assert rows[7] == ('only new', 'only new')
    assert rows[8] == ('item8', 'item8')       # both set: from wins
    assert rows[14] == (None, None)            # both NULL stays NULL


def test_failed_trigger_statement_does_not_disable_sync_for_the_connection(db, run_module):
    conn = db.connect()
    create_users(conn, 3)
    # a rule of the new table that the old one lacks: long values make the trigger body's write fail
    execute(conn, 'ALTER TABLE addresses ADD CONSTRAINT addresses_short CHECK (CHAR_LENGTH(address_line_1) <= 10)')
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SEED))
    assert not res.get('failed'), res
    with pytest.raises(pymysql.err.MySQLError):
        execute(conn, "INSERT INTO users (id, address_line_1) VALUES (20, 'much too long for ten')")
    assert execute(conn, 'SELECT COUNT(*) FROM users WHERE id = 20') == ((0,),)
    # the same connection: the next writes in both directions are still mirrored
    execute(conn, "INSERT INTO users (id, address_line_1) VALUES (21, 'short')")
    assert execute(conn, 'SELECT address_line_1 FROM addresses WHERE user_id = 21') == (('short',),)
    with pytest.raises(pymysql.err.MySQLError):
        execute(conn, "UPDATE users SET address_line_1 = 'again much too long' WHERE id = 21")
    execute(conn, "UPDATE addresses SET address_line_2 = 'back' WHERE user_id = 21")
    assert execute(conn, 'SELECT address_line_2 FROM users WHERE id = 21') == (('back',),)
    execute(conn, "UPDATE users SET address_line_1 = 'ok2' WHERE id = 21")
    assert execute(conn, 'SELECT address_line_1 FROM addresses WHERE user_id = 21') == (('ok2',),)
    # inside a transaction with a failed statement, then a retried write
    execute(conn, 'START TRANSACTION')
    with pytest.raises(pymysql.err.MySQLError):
        execute(conn, "UPDATE users SET address_line_1 = 'too long once more' WHERE id = 21")
    execute(conn, "UPDATE users SET address_line_1 = 'ok3' WHERE id = 21")
    execute(conn, 'COMMIT')
    assert execute(conn, 'SELECT address_line_1 FROM addresses WHERE user_id = 21') == (('ok3',),)
    assert execute(conn, 'SELECT @zdt_sync_m2_s0') == ((None,),)


# ------------------------------------------------------------------------------------------ operations

def test_kill_mid_backfill_then_resume(db, run_module):
    conn = db.connect()
    create_users(conn, 40000)
    args = dict(db.params, migration=SEED, chunk_size=50, chunk_time=0.002)
    proc, path = start_module('mysql_trigger_sync', args)
    seen = []

    def running_with_progress():
        # what a playbook does while the backfill runs under async: poll mysql_sync_info
        info = run_module('mysql_sync_info', dict(db.params, migration=SEED))
        assert not info.get('failed'), info
        prog = info['sync'][0]['backfill']
        if prog['state'] == 'running' and prog['rows_done'] >= 2000:
            seen.append(prog)
        return bool(seen)
    kill_when(proc, path, running_with_progress)
    live = seen[0]
    assert live['rows_total'] == 40000 and live['rows_per_second'] > 0 and live['eta_seconds'] > 0, live
    wait_lock_released(conn, 'zdt_backfill_%s_2' % db.name)
    info = run_module('mysql_sync_info', dict(db.params, migration=SEED))
    assert not info.get('failed'), info
    prog = info['sync'][0]['backfill']
    # forward triggers exist from the start; backward ones are created once the backfill is complete
    assert sorted(info['sync'][0]['triggers_present']) == ['zdt_m2_s0_fwd_ins', 'zdt_m2_s0_fwd_upd']
    assert info['sync'][0]['triggers_exist'] is False
    assert prog['state'] == 'interrupted' and 0 < prog['rows_done'] < prog['rows_total'] == 40000
    checkpoint = execute(conn, 'SELECT last_key FROM zdt_sync_progress WHERE migration_id = 2')[0][0]
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SEED))
    assert not res.get('failed'), res
    assert res['backfill']['resumed_from'] == json.loads(checkpoint)
    assert 0 < res['backfill']['rows_copied'] < 40000
    assert res['verify']['mismatches'] == 0 and res['verify']['rows_checked'] == 40000
    users, addrs = snapshot_cross(conn)
    assert addrs == expected_addresses(users)
    info = run_module('mysql_sync_info', dict(db.params, migration=SEED))
    assert info['sync'][0]['backfill']['state'] == 'done' and info['sync'][0]['backfill']['eta_seconds'] == 0
    assert info['sync'][0]['triggers_exist'] is True


def test_check_mode_changes_nothing_and_idempotence(db, run_module):
    conn = db.connect()
    create_users(conn, 500)
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SEED), check_mode=True)
    assert not res.get('failed') and res['changed'] is True, res
    assert len(res['created']) == 5 and res['backfill']['rows_total'] == 500
    assert execute(conn, 'SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()') == ((0,),)
    assert execute(conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'zdt%%'") == ((0,),)
    assert execute(conn, 'SELECT COUNT(*) FROM addresses') == ((0,),)
    first = run_module('mysql_trigger_sync', dict(db.params, migration=SEED))
    assert first['changed'] is True and first['backfill']['rows_copied'] > 0
    second = run_module('mysql_trigger_sync', dict(db.params, migration=SEED))
    assert second['changed'] is False and second['created'] == [] and second['backfill']['rows_copied'] == 0
    third = run_module('mysql_trigger_sync', dict(db.params, migration=SEED), check_mode=True)
    assert third['changed'] is False
    absent_check = run_module('mysql_trigger_sync', dict(db.params, migration=SEED, state='absent'), check_mode=True)
    assert absent_check['changed'] is True
    assert execute(conn, 'SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()') == ((5,),)


def test_check_mode_before_the_expand_plans_what_the_expand_makes_possible(db, run_module):
    """A whole upgrade in check mode runs the sync's check before the expand ran: tables and columns the migration's
    own expand creates are not there yet. The check plans the entry (trigger names, rows to copy) instead of failing;
    a table nobody creates still fails naming the field."""
    conn = db.connect()
    execute(conn, 'CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100), email VARCHAR(100), '
                  'address_line_1 VARCHAR(100), address_line_2 VARCHAR(100))')
    execute(conn, "INSERT INTO users (name, address_line_1) VALUES ('a', 'x'), ('b', NULL), ('c', 'z')")
    path = os.path.join(REPO_ROOT, 'sample', 'migrations', '002_addresses.yml')
    res = run_module('mysql_trigger_sync', dict(db.params, migration=path), check_mode=True)
    assert not res.get('failed') and res['changed'] is True, res
    assert res['after_expand'] == [0] and res['backfill']['rows_total'] == 3
    # the expand's foreign key ON DELETE CASCADE replaces the forward delete trigger, as on the real run (5 triggers)
    assert sorted(res['created']) == sorted(t for t in res['triggers']) and len(res['triggers']) == 5
    assert 'zdt_m2_s0_fwd_del' not in res['triggers']
    assert execute(conn, 'SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()') == ((0,),)
    nobody = json.loads(json.dumps(SEED))
    nobody['sync'][0]['to']['table'] = 'no_such_table'
    res = run_module('mysql_trigger_sync', dict(db.params, migration=nobody), check_mode=True)
    assert res.get('failed') and res['msg'].startswith('sync[0].to.table'), res


def test_absent_drops_only_ours_and_user_trigger_keeps_working(db, run_module):
    conn = db.connect()
    create_users(conn, 20)
    execute(conn, 'CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, user_id INT, what VARCHAR(20))')
    execute(conn, "CREATE TRIGGER users_audit_upd AFTER UPDATE ON users FOR EACH ROW INSERT INTO audit (user_id, what) VALUES (NEW.id, 'upd')")
    execute(conn, "CREATE TRIGGER zdt_users_mine AFTER INSERT ON users FOR EACH ROW INSERT INTO audit (user_id, what) VALUES (NEW.id, 'ins')")
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SEED))
    assert not res.get('failed'), res
    execute(conn, "UPDATE users SET address_line_1 = 'both fire' WHERE id = 1")
    execute(conn, "INSERT INTO users (id, address_line_1) VALUES (99, 'new')")
    assert execute(conn, 'SELECT address_line_1 FROM addresses WHERE user_id = 1') == (('both fire',),)
    assert execute(conn, "SELECT what FROM audit ORDER BY id") == (('upd',), ('ins',))
    gone = run_module('mysql_trigger_sync', dict(db.params, migration=SEED, state='absent'))
    assert gone['changed'] is True and len(gone['triggers']) == 5
    names = [r[0] for r in execute(conn, 'SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1')]
    assert names == ['users_audit_upd', 'zdt_users_mine']
    assert execute(conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'zdt_sync_progress'") == ((0,),)
    again = run_module('mysql_trigger_sync', dict(db.params, migration=SEED, state='absent'))
    assert again['changed'] is False


def test_foreign_trigger_with_our_name_is_never_touched(db, run_module):
    conn = db.connect()
    create_users(conn, 5)
    execute(conn, 'CREATE TRIGGER zdt_m2_s0_fwd_ins AFTER INSERT ON users FOR EACH ROW SET @x = 1')
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SEED))
    assert res.get('failed') and 'zdt_m2_s0_fwd_ins' in res['msg'] and 'not created by' in res['msg']
    assert execute(conn, 'SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()') == ((1,),)
    gone = run_module('mysql_trigger_sync', dict(db.params, migration=SEED, state='absent'))
    assert gone['changed'] is False
    assert execute(conn, 'SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()') == ((1,),)


@pytest.mark.parametrize('ddl,field', [
    ('ALTER TABLE addresses MODIFY address_line_1 VARCHAR(10)', 'sync[0].to.columns[0]'),
    ('ALTER TABLE users MODIFY address_line_2 VARCHAR(50)', 'sync[0].from.columns[1]'),
    ("ALTER TABLE addresses MODIFY address_line_2 VARCHAR(100) NOT NULL DEFAULT ''", 'sync[0].to.columns[1]'),
    ("ALTER TABLE users MODIFY address_line_1 VARCHAR(100) NOT NULL DEFAULT ''", 'sync[0].from.columns[0]'),
    ('ALTER TABLE addresses MODIFY address_line_1 INT', 'sync[0].to.columns[0]'),
])
def test_columns_that_cannot_hold_the_other_side_are_refused_up_front(db, run_module, ddl, field):
    conn = db.connect()
    create_users(conn, 3)
    execute(conn, ddl)
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SEED))
    assert res.get('failed') and res['msg'].startswith(field), res
    assert execute(conn, "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (db.name,)) == ((0,),)


def test_refusals_happen_before_any_change(db, run_module):
    conn = db.connect()
    create_users(conn, 5)
    execute(conn, 'ALTER TABLE addresses DROP FOREIGN KEY addresses_fk')
    execute(conn, 'ALTER TABLE addresses DROP INDEX addresses_uid')
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SEED))
    assert res.get('failed') and 'sync[0].to.key' in res['msg'] and 'UNIQUE index on addresses(user_id)' in res['msg'], res
    bad_col = json.loads(json.dumps(SEED))
    bad_col['sync'][0]['to']['columns'][1] = 'nope'
    res = run_module('mysql_trigger_sync', dict(db.params, migration=bad_col))
    assert res.get('failed') and 'sync[0].to.columns[1]' in res['msg'] and 'addresses.nope' in res['msg']
    assert execute(conn, 'SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()') == ((0,),)


@pytest.mark.parametrize('option,value,message', [
    ('lock_wait_timeout', 0, 'lock_wait_timeout must be at least 1, got 0'),   # the same bound as mysql_expand's
    ('ddl_retries', -1, 'ddl_retries must be at least 0, got -1'),
    ('chunk_size', 0, 'chunk_size must be at least 1, got 0'),
    ('chunk_time', 0, 'chunk_time must be greater than 0, got 0.0'),
    ('max_threads_running', -1, 'max_threads_running must be at least 0, got -1'),
])
def test_options_out_of_bounds_fail_before_any_change(db, run_module, option, value, message):
    conn = db.connect()
    create_users(conn, 3)
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SEED, **{option: value}))
    assert res.get('failed') and res['msg'] == message, res
    assert execute(conn, 'SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()') == ((0,),)


@pytest.mark.parametrize('name', ['users`; DROP TABLE users; --', "users' OR '1'='1", 'users;', 'a b', ''])
def test_hostile_identifiers_never_reach_the_server(db, run_module, name):
    conn = db.connect()
    create_users(conn, 3)
    mig = json.loads(json.dumps(SEED))
    mig['sync'][0]['from']['table'] = name
    res = run_module('mysql_trigger_sync', dict(db.params, migration=mig))
    assert res.get('failed') and 'sync[0].from.table' in res['msg'], res
    assert execute(conn, 'SELECT COUNT(*) FROM users') == ((3,),)
    assert execute(conn, 'SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()') == ((0,),)


def test_reserved_and_unicode_identifiers_work(db, run_module):
    conn = db.connect()
    create_users(conn, 50, users='select', addresses='adrèsses', c1='order', c2='straße')
    mig = {'id': 7, 'description': 'odd names',
           'sync': [{'from': {'table': 'select', 'key': 'id', 'columns': ['order', 'straße']},
                     'to': {'table': 'adrèsses', 'key': 'user_id', 'columns': ['order', 'straße']}}]}
    res = run_module('mysql_trigger_sync', dict(db.params, migration=mig))
    assert not res.get('failed') and res['verify']['mismatches'] == 0, res
    execute(conn, "UPDATE `select` SET `straße` = 'ü' WHERE id = 1")
    assert execute(conn, 'SELECT `straße` FROM `adrèsses` WHERE user_id = 1') == (('ü',),)


def test_second_run_fails_naming_the_lock_holder(db, run_module):
    conn = db.connect()
    create_users(conn, 5)
    holder = db.connect()
    execute(holder, 'SELECT GET_LOCK(%s, 0)', ('zdt_backfill_%s_2' % db.name,))
    holder_id = execute(holder, 'SELECT CONNECTION_ID()')[0][0]
    t0 = time.time()
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SEED, lock_wait_timeout=1, ddl_retries=1))
    assert res.get('failed') and 'connection id %s' % holder_id in res['msg'], res
    assert time.time() - t0 < 20
    holder.close()
    assert execute(conn, 'SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()') == ((0,),)


def test_verify_mismatch_fails_and_names_keys(db, run_module):
    conn = db.connect()
    create_users(conn, 30)
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SEED))
    assert not res.get('failed'), res
    # break the copy behind the triggers' back (a session that skips our triggers)
    execute(conn, 'SET @zdt_copy_m2_s0 = 1')
    execute(conn, "UPDATE addresses SET address_line_1 = 'drift' WHERE user_id IN (4, 7)")
    execute(conn, 'DELETE FROM addresses WHERE user_id = 11')
    res = run_module('mysql_trigger_sync', dict(db.params, migration=SEED))
    assert res.get('failed') and res['verify']['mismatches'] == 3, res
    assert res['verify']['keys'] == [4, 7, 11] and '4, 7, 11' in res['msg']
