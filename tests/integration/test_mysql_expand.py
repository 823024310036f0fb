# -*- coding: utf-8 -*-
"""mysql_expand against the sandbox's real MariaDB: expand/contract/rollback, idempotence, resume after kill -9,
drift, check mode, hostile identifiers, connection errors and metadata-lock behaviour."""
import copy
import json
import os
import signal
import socket
import threading
import time

import pytest

from zdt_lab.modules import start_module
from zdt_lab.waiting import wait_for
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO_ROOT, 'sample', 'migrations')
USERS = os.path.join(FIXTURES, '001_users.yml')
ADDRESSES = os.path.join(FIXTURES, '002_addresses.yml')


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def snapshot(db):
    """Everything about the user-visible schema: table definitions (minus AUTO_INCREMENT counters) and indexes."""
    out = {}
    for (name,) in db.query('SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME', (db.name,)):
        create = db.query('SHOW CREATE TABLE `%s`' % name)[0][1]
        out[name] = ' '.join(w for w in create.split() if not w.startswith('AUTO_INCREMENT='))
    out['#columns'] = db.query('SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT FROM information_schema.COLUMNS '
                               'WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION', (db.name,))
    out['#indexes'] = db.query('SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME, NON_UNIQUE FROM information_schema.STATISTICS '
                               'WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX', (db.name,))
    return out


def user_tables(snap):
    return dict((k, v) for k, v in snap.items() if not k.startswith(('zdt_', 'changelog', '#')))


def expand(run_module, db, migration, phase='expand', check_mode=False, diff=False, **extra):
    args = dict(db.params, migration=migration, phase=phase)
    args.update(extra)
    return run_module('mysql_expand', args, check_mode=check_mode, diff=diff)


def ok(result):
    assert not result.get('failed'), result.get('msg')
    return result


@pytest.fixture
def users_db(db, run_module):
    ok(expand(run_module, db, USERS))
    with db.root_connect() as conn, conn.cursor() as cur:
        cur.executemany('INSERT INTO users (name, email, address_line_1, address_line_2) VALUES (%s, %s, %s, %s)',
                        [('u%d' % i, 'u%d@example.invalid' % i, 'street %d' % i, None) for i in range(200)])
    return db


def write_migration(tmp_path, data, name='m.yml'):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_expand_contract_cycle_is_idempotent(users_db, run_module):
    db = users_db
    first = ok(expand(run_module, db, ADDRESSES))
    assert first['changed'] is True
    assert first['statements'][0].startswith('CREATE TABLE `addresses`') and len(first['statements']) == 1
    second = ok(expand(run_module, db, ADDRESSES))
    assert second['changed'] is False and second['statements'] == []
    assert db.query('SELECT change_number, description FROM changelog ORDER BY change_number') == (
        (1, 'Create the users table with a single address per user'), (2, 'Move addresses from users into their own table'))

    contract = ok(expand(run_module, db, ADDRESSES, 'contract'))
    assert contract['changed'] is True
    assert contract['statements'] == [
        'ALTER TABLE `users` DROP COLUMN `address_line_1`, DROP COLUMN `address_line_2`, ALGORITHM=INSTANT',
        'ALTER TABLE `addresses` ADD INDEX `addresses_user` (`user_id`), ALGORITHM=INPLACE, LOCK=NONE',
        'ALTER TABLE `addresses` DROP INDEX `addresses_user_id`, ALGORITHM=INPLACE, LOCK=NONE']
    cols = [r[0] for r in db.query('SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s '
                                   'ORDER BY ORDINAL_POSITION', (db.name, 'users'))]
    assert cols == ['id', 'name', 'email']
    again = ok(expand(run_module, db, ADDRESSES, 'contract'))
    assert again['changed'] is False and again['statements'] == []
    # expand after contract must not re-create what contract removed
    after = ok(expand(run_module, db, ADDRESSES))
    assert after['changed'] is False and after['statements'] == []
    assert db.query('SELECT COUNT(*) FROM users')[0][0] == 200


def test_check_mode_changes_nothing_and_predicts_statements(users_db, run_module):
    db = users_db
    before = snapshot(db)
    predicted = ok(expand(run_module, db, ADDRESSES, check_mode=True, diff=True))
    assert predicted['changed'] is True
    assert snapshot(db) == before
    assert db.query('SELECT COUNT(*) FROM changelog')[0][0] == 1
    real = ok(expand(run_module, db, ADDRESSES))
    assert real['statements'] == predicted['statements']
    # contract in check mode
    before = snapshot(db)
    predicted = ok(expand(run_module, db, ADDRESSES, 'contract', check_mode=True))
    assert snapshot(db) == before and len(predicted['statements']) == 3
    assert db.query("SELECT COUNT(*) FROM zdt_migration_state WHERE phase = 'contract'")[0][0] == 0
    real = ok(expand(run_module, db, ADDRESSES, 'contract'))
    assert real['statements'] == predicted['statements']
    # a check-mode run of a finished phase reports no change
    assert ok(expand(run_module, db, ADDRESSES, 'contract', check_mode=True))['changed'] is False


def test_diff_shows_before_and_after(users_db, run_module):
    result = ok(expand(run_module, users_db, ADDRESSES, diff=True))
    assert '(absent)' in result['diff']['before']
    assert 'CONSTRAINT `addresses_user_fk`' in result['diff']['after']


def richer_migration():
    data = load(ADDRESSES)
    data['expand'] += [
        {'add_column': {'table': 'users', 'column': {'name': 'phone', 'type': 'VARCHAR(20)', 'default': "n'a"}}},
        {'add_column': {'table': 'users', 'column': {'name': 'created', 'type': 'DATETIME(3)', 'nullable': False,
                                                     'default': 'CURRENT_TIMESTAMP'}}},
        {'create_index': {'table': 'users', 'name': 'users_phone', 'columns': ['phone', 'email']}},
        {'sql': {'up': "INSERT INTO addresses (user_id, address_line_1) SELECT id, 'seed' FROM users WHERE id = 1",
                 'down': 'DELETE FROM addresses WHERE user_id = 1'}},
    ]
    return data


def test_rollback_restores_the_original_schema(users_db, run_module, tmp_path):
    db = users_db
    original = user_tables(snapshot(db))
    path = write_migration(tmp_path, richer_migration())
    result = ok(expand(run_module, db, path))
    assert [s.split(' ADD ')[0] for s in result['statements'][1:4]] == ['ALTER TABLE `users`'] * 3
    assert result['statements'][1].endswith('ALGORITHM=INSTANT') and result['statements'][3].endswith('LOCK=NONE')
    assert db.query('SELECT phone FROM users WHERE id = 2')[0][0] == "n'a"
    assert db.query('SELECT address_line_1 FROM addresses')[0][0] == 'seed'
    rollback = ok(expand(run_module, db, path, 'rollback'))
    assert rollback['statements'] == [
        'DELETE FROM addresses WHERE user_id = 1',
        'ALTER TABLE `users` DROP INDEX `users_phone`, ALGORITHM=INPLACE, LOCK=NONE',
        'ALTER TABLE `users` DROP COLUMN `created`, ALGORITHM=INSTANT',
        'ALTER TABLE `users` DROP COLUMN `phone`, ALGORITHM=INSTANT',
        'DROP TABLE `addresses`']
    assert user_tables(snapshot(db)) == original
    assert db.query('SELECT change_number FROM changelog') == ((1,),)
    assert ok(expand(run_module, db, path, 'rollback'))['changed'] is False
    # the migration can be applied again after a rollback
    assert ok(expand(run_module, db, path))['changed'] is True


def test_rollback_refused_after_contract(users_db, run_module):
    db = users_db
    ok(expand(run_module, db, ADDRESSES))
    ok(expand(run_module, db, ADDRESSES, 'contract'))
    before = snapshot(db)
    result = expand(run_module, db, ADDRESSES, 'rollback')
    assert result['failed'] and 'migration 2: rollback refused' in result['msg'] and 'contract' in result['msg']
    assert snapshot(db) == before


def test_contract_check_mode_can_plan_past_the_sync_triggers_a_run_drops_first(users_db, run_module):
    """contract.yml --check: the role's trigger drop does not run in check mode, so the contract's check is told to
    plan without them (sync_triggers_dropped); the statements are those of the real contract once they are gone."""
    db = users_db
    ok(expand(run_module, db, ADDRESSES))
    ok(run_module('mysql_trigger_sync', dict(db.params, migration=ADDRESSES)))
    before = snapshot(db)
    refused = expand(run_module, db, ADDRESSES, 'contract', check_mode=True)
    assert refused['failed'] and 'sync triggers still exist' in refused['msg']
    planned = ok(expand(run_module, db, ADDRESSES, 'contract', check_mode=True, sync_triggers_dropped=True))
    assert planned['changed'] and any('DROP COLUMN' in s for s in planned['statements']), planned
    outside = expand(run_module, db, ADDRESSES, 'contract', sync_triggers_dropped=True)
    assert outside['failed'] and 'only for check mode' in outside['msg']
    assert snapshot(db) == before
    ok(run_module('mysql_trigger_sync', dict(db.params, migration=ADDRESSES, state='absent')))
    assert ok(expand(run_module, db, ADDRESSES, 'contract'))['statements'] == planned['statements']


def test_contract_refused_before_expand(users_db, run_module):
    before = snapshot(users_db)
    result = expand(run_module, users_db, ADDRESSES, 'contract')
    assert result['failed'] and 'contract refused' in result['msg']
    assert snapshot(users_db) == before


def test_drift_is_detected(users_db, run_module, tmp_path):
    db = users_db
    data = load(ADDRESSES)
    path = write_migration(tmp_path, data)
    ok(expand(run_module, db, path))
    data['expand'][0]['create_table']['columns'][2]['type'] = 'VARCHAR(200)'
    edited = write_migration(tmp_path, data, 'edited.yml')
    before = snapshot(db)
    for phase in ('expand', 'contract', 'rollback'):
        result = expand(run_module, db, edited, phase)
        assert result['failed'] and 'migration 2' in result['msg'] and 'changed' in result['msg'], result
    assert snapshot(db) == before
    # only a cosmetic edit (comments, key order) is not drift
    with open(path) as f:
        text = f.read()
    cosmetic = tmp_path / 'cosmetic.yml'
    cosmetic.write_text('# reviewed\n' + text)
    assert ok(expand(run_module, db, str(cosmetic)))['changed'] is False


def test_killed_run_resumes_without_repeating_finished_steps(users_db, run_module, tmp_path):
    db = users_db
    data = load(ADDRESSES)
    data['expand'].append({'add_column': {'table': 'users', 'column': {'name': 'phone', 'type': 'VARCHAR(20)'}}})
    path = write_migration(tmp_path, data)
    blocker = db.root_connect()
    blocker.autocommit(False)
    with blocker.cursor() as cur:
        cur.execute('SELECT COUNT(*) FROM users')   # holds a shared metadata lock on users until rollback
        cur.fetchall()
    proc, args_file = start_module('mysql_expand', dict(db.params, migration=path, lock_wait_timeout=1, ddl_retries=1000))
    try:
        def step1_running():
            try:
                return db.query("SELECT status FROM zdt_migration_step WHERE migration_id = 2 AND phase = 'expand' AND step_index = 1")
            except Exception:  # pylint: disable=broad-except
                return None
        assert wait_for(step1_running)[0][0] == 'running'
        assert db.query("SELECT status FROM zdt_migration_step WHERE migration_id = 2 AND step_index = 0")[0][0] == 'ran'
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        # the server only notices the dead client when its pending ALTER times out; wait for that, or the orphaned
        # statement would still complete once the blocker goes away
        wait_for(lambda: not db.query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'ALTER TABLE%%'"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.unlink(args_file)
        blocker.rollback()
        blocker.close()
    assert db.query('SELECT COUNT(*) FROM changelog WHERE change_number = 2')[0][0] == 0   # expand did not complete
    resumed = ok(expand(run_module, db, path))
    assert resumed['changed'] is True
    assert resumed['statements'] == ['ALTER TABLE `users` ADD COLUMN `phone` VARCHAR(20) NULL, ALGORITHM=INSTANT']
    assert [s['op'] for s in resumed['skipped_ops']] == ['expand[0]']
    assert db.query('SELECT COUNT(*) FROM changelog WHERE change_number = 2')[0][0] == 1
    assert ok(expand(run_module, db, path))['changed'] is False
    # the table made before the kill is still known as ours: rollback removes it
    rollback = ok(expand(run_module, db, path, 'rollback'))
    assert rollback['statements'] == ['ALTER TABLE `users` DROP COLUMN `phone`, ALGORITHM=INSTANT', 'DROP TABLE `addresses`']


@pytest.mark.parametrize('ddl,message', [
    ('CREATE TABLE changelog (change_number INT PRIMARY KEY, description VARCHAR(500))',
     'changelog table changelog lacks dbdeploy column(s) complete_dt, applied_by'),
    ('CREATE TABLE changelog (change_number INT PRIMARY KEY, complete_dt DATETIME, applied_by VARCHAR(100), '
     'description VARCHAR(500), ticket VARCHAR(20) NOT NULL)',
     'changelog table changelog has NOT NULL column(s) without a default this module cannot fill: ticket'),
])
def test_an_existing_changelog_of_the_wrong_shape_is_refused_before_any_change(db, run_module, ddl, message):
    db.query(ddl)
    before = snapshot(db)
    result = expand(run_module, db, load(USERS))
    assert result['failed'] and message in result['msg']
    assert snapshot(db) == before and db.query('SELECT COUNT(*) FROM changelog') == ((0,),)


def test_an_existing_dbdeploy_changelog_gets_its_optional_columns_filled(db, run_module):
    db.query('CREATE TABLE changelog (change_number INT PRIMARY KEY, delta_set VARCHAR(10) NOT NULL, start_dt TIMESTAMP NULL, '
             'complete_dt TIMESTAMP NULL, applied_by VARCHAR(100) NOT NULL, description VARCHAR(500) NOT NULL, '
             'seq INT NOT NULL AUTO_INCREMENT UNIQUE, note VARCHAR(20) NOT NULL DEFAULT \'\')')
    ok(expand(run_module, db, load(USERS)))
    row = db.query('SELECT change_number, delta_set, start_dt IS NOT NULL, complete_dt IS NOT NULL, description FROM changelog')
    assert row == ((1, 'Main', 1, 1, load(USERS)['description']),)


def test_pre_existing_table_is_never_dropped_by_rollback(users_db, run_module):
    db = users_db
    with db.root_connect() as conn, conn.cursor() as cur:
        cur.execute('CREATE TABLE addresses (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, user_id INT NOT NULL, '
                    'address_line_1 VARCHAR(100), address_line_2 VARCHAR(100), UNIQUE KEY addresses_user_id (user_id))')
    result = ok(expand(run_module, db, ADDRESSES))
    assert result['statements'] == [] and result['changed'] is True   # only the changelog row was written
    rollback = ok(expand(run_module, db, ADDRESSES, 'rollback'))
    assert rollback['statements'] == []
    assert db.query('SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s',
                    (db.name, 'addresses'))[0][0] == 1


def test_contract_refuses_a_column_that_a_table_outside_the_migration_references(users_db, run_module):
    db = users_db
    ok(expand(run_module, db, ADDRESSES))
    db.query('CREATE INDEX users_line_1 ON users (address_line_1)')
    db.query('CREATE TABLE labels (id INT PRIMARY KEY, line VARCHAR(100), '
             'CONSTRAINT labels_line_fk FOREIGN KEY (line) REFERENCES users (address_line_1)) ENGINE=InnoDB')
    before = snapshot(db)
    result = expand(run_module, db, ADDRESSES, 'contract')
    assert result['failed'] and 'contract[0]' in result['msg']
    assert 'is referenced by foreign key labels_line_fk of table labels' in result['msg']
    assert result.get('statements', []) == [] and snapshot(db) == before


def test_contract_refuses_a_table_that_a_same_named_table_of_another_schema_references(db, run_module, mariadb):
    other = db.name + '_other'
    mariadb.create_database(other)
    try:
        db.query('CREATE TABLE tags (id INT PRIMARY KEY) ENGINE=InnoDB')
        db.query('CREATE TABLE `%s`.tags (id INT PRIMARY KEY, tag_id INT, CONSTRAINT other_tags_fk FOREIGN KEY (tag_id) '
                 'REFERENCES `%s`.tags (id)) ENGINE=InnoDB' % (other, db.name))
        migration = {'id': 5, 'description': 'Drop tags', 'expand': [], 'contract': [{'drop_table': {'table': 'tags'}}]}
        ok(expand(run_module, db, migration))
        before = snapshot(db)
        result = expand(run_module, db, migration, 'contract')
        assert result['failed'] and 'contract[0]' in result['msg']
        assert 'still referenced by foreign key other_tags_fk of table %s.tags' % other in result['msg']
        assert snapshot(db) == before
    finally:
        db.query('DROP DATABASE `%s`' % other)


HOSTILE = 'addr`; DROP TABLE users; --'


def test_hostile_identifier_fails_before_connecting(run_module):
    data = load(ADDRESSES)
    data['expand'][0]['create_table']['table'] = HOSTILE
    # no server listens on port 1: a spec error proves validation happened before any connection attempt
    result = run_module('mysql_expand', dict(login_host='127.0.0.1', login_port=1, login_user='x', login_password='y',
                                             database='whatever', migration=data))
    assert result['failed'] and result['msg'].startswith('expand[0].create_table.table: invalid identifier')


def test_hostile_identifiers_never_reach_the_server(users_db, run_module, mariadb):
    db = users_db
    before = snapshot(db)
    marker = 'zdt_hostile_marker'
    cases = []
    for where in ('table', 'column', 'type', 'index', 'default', 'sync', 'charset'):
        data = load(ADDRESSES)
        ct = data['expand'][0]['create_table']
        if where == 'table':
            ct['table'] = marker + '`; DROP TABLE users; --'
        elif where == 'column':
            ct['columns'][2]['name'] = marker + "'"
        elif where == 'type':
            ct['columns'][2]['type'] = 'VARCHAR(10); DROP TABLE users; -- ' + marker
        elif where == 'index':
            ct['indexes'][0]['name'] = marker + ' x'
        elif where == 'default':
            ct['columns'][2]['default'] = marker + "\\'; DROP TABLE users; --"
        elif where == 'sync':
            data['sync'][0]['to']['columns'][0] = marker + ';'
        else:
            ct['columns'][2]['charset'] = 'utf8mb4 ' + marker
        cases.append((where, data))
    with mariadb.root_connect() as root, root.cursor() as cur:
        cur.execute("SET GLOBAL log_output = 'TABLE'")
        cur.execute('TRUNCATE TABLE mysql.general_log')
        cur.execute('SET GLOBAL general_log = 1')
        try:
            for where, data in cases:
                result = run_module('mysql_expand', dict(db.params, migration=data))
                assert result['failed'], where
                assert result['msg'].split(':')[0].startswith(('expand[0]', 'sync[0]')), (where, result['msg'])
            cur.execute("SELECT COUNT(*) FROM mysql.general_log WHERE argument LIKE %s AND thread_id <> CONNECTION_ID()",
                        ('%' + marker + '%',))
            leaked = cur.fetchone()[0]
            with db.connect() as other, other.cursor() as ocur:   # control: the log does record other sessions
                ocur.execute('SELECT %s', ('zdt_control_probe',))
            cur.execute("SELECT COUNT(*) FROM mysql.general_log WHERE argument LIKE %s AND thread_id <> CONNECTION_ID()",
                        ('%zdt_control_probe%',))
            control = cur.fetchone()[0]
        finally:
            cur.execute('SET GLOBAL general_log = 0')
    assert leaked == 0
    assert control == 1
    assert snapshot(db) == before


def test_reserved_words_and_unicode_identifiers_work(db, run_module, tmp_path):
    data = {'id': 5, 'description': 'quoting', 'expand': [
        {'create_table': {'table': 'order', 'columns': [
            {'name': 'select', 'type': 'INT', 'nullable': False},
            {'name': 'ключ', 'type': 'VARCHAR(20)', 'charset': 'utf8mb4', 'collation': 'utf8mb4_bin'},
            {'name': '$where', 'type': "ENUM('a', 'it''s')", 'default': "it's"}],
            'primary_key': ['select'], 'indexes': [{'name': 'index', 'columns': ['ключ']}]}},
        {'add_column': {'table': 'order', 'column': {'name': 'from', 'type': 'DECIMAL(8,2)', 'default': 1.25}}},
    ]}
    ok(run_module('mysql_expand', dict(db.params, migration=data)))
    assert ok(run_module('mysql_expand', dict(db.params, migration=data)))['changed'] is False
    db.query('INSERT INTO `order` (`select`, `ключ`) VALUES (1, %s)', ('значение',))
    assert db.query('SELECT `ключ`, `$where`, `from` FROM `order`')[0][:2] == ('значение', "it's")
    ok(run_module('mysql_expand', dict(db.params, migration=data, phase='rollback')))
    assert db.query('SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s', (db.name, 'order'))[0][0] == 0


def test_connection_errors_are_clear_and_secret_free(db, run_module, mariadb):
    params = dict(db.params, migration=ADDRESSES)
    wrong = dict(params, login_password='Wr0ng-S3cret-pw')
    result = run_module('mysql_expand', wrong)
    assert result['failed'] and 'access denied' in result['msg'] and 'Wr0ng-S3cret-pw' not in json.dumps(result)
    result = run_module('mysql_expand', dict(params, database='nosuchdb_zdt'))
    assert mariadb.app_password not in json.dumps(result)
    # without global privileges the server answers 1044 rather than 1049 for a database that does not exist
    assert 'unknown database nosuchdb_zdt' in result['msg'] or 'may not use database nosuchdb_zdt' in result['msg']
    root = dict(mariadb.root_params(), database='nosuchdb_zdt', migration=ADDRESSES)
    assert 'unknown database nosuchdb_zdt' in run_module('mysql_expand', root)['msg']

    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    result = run_module('mysql_expand', dict(params, login_port=port, connect_timeout=3))
    assert result['failed'] and 'cannot reach the MySQL server at 127.0.0.1:%d' % port in result['msg']


def test_missing_table_fails_before_any_change(users_db, run_module):
    db = users_db
    data = load(ADDRESSES)
    data['expand'].append({'add_column': {'table': 'user', 'column': {'name': 'x', 'type': 'INT'}}})
    before = snapshot(db)
    result = expand(run_module, db, data)
    assert result['failed'] and 'expand[1].add_column.table' in result['msg'] and 'user does not exist' in result['msg']
    assert snapshot(db) == before     # the create_table of expand[0] did not run either
    data = load(ADDRESSES)
    data['contract'][0]['drop_columns']['table'] = 'nosuch'
    ok(expand(run_module, db, ADDRESSES))
    # (the edited file would be drift for migration 2: use another id)
    data['id'] = 3
    ok(expand(run_module, db, dict(data, expand=[])))
    result = expand(run_module, db, dict(data, expand=[]), 'contract')
    assert result['failed'] and 'contract[0].drop_columns.table' in result['msg']


def test_change_the_server_cannot_make_online_fails_naming_the_op(db, run_module):
    db.query('CREATE TABLE docs (id INT PRIMARY KEY, body TEXT, FULLTEXT KEY docs_body (body)) ENGINE=InnoDB')
    before = snapshot(db)
    data = {'id': 4, 'description': 'x', 'expand': [{'add_column': {'table': 'docs', 'column': {'name': 'title', 'type': 'VARCHAR(10)'}}}]}
    result = run_module('mysql_expand', dict(db.params, migration=data))
    assert result['failed'] and 'expand[0] add_column docs.title' in result['msg'] and 'cannot make this change online' in result['msg']
    assert user_tables(snapshot(db)) == user_tables(before)


def test_metadata_lock_wait_retries_then_fails_without_stalling_the_site(users_db, run_module, mariadb):
    db = users_db
    data = load(ADDRESSES)
    data['expand'] = [{'add_column': {'table': 'users', 'column': {'name': 'phone', 'type': 'VARCHAR(20)'}}}]
    # log in as root over the socket so the module may see other sessions (PROCESS privilege) and name the blocker
    params = dict(mariadb.root_params(), database=db.name, migration=data, lock_wait_timeout=1, ddl_retries=2)
    blocker = db.root_connect()
    blocker.autocommit(False)
    with blocker.cursor() as cur:
        cur.execute('SELECT CONNECTION_ID()')
        blocker_id = cur.fetchone()[0]
        cur.execute('SELECT COUNT(*) FROM users')   # long transaction: holds a metadata lock on users
        cur.fetchall()
    latencies = []
    stop = threading.Event()

    def probe():
        conn = db.connect()
        try:
            while not stop.is_set():
                t0 = time.time()
                with conn.cursor() as cur:
                    cur.execute('SELECT COUNT(*) FROM users WHERE id < 10')
                    cur.fetchall()
                latencies.append(time.time() - t0)
                time.sleep(0.02)
        finally:
            conn.close()

    thread = threading.Thread(target=probe)
    thread.start()
    t0 = time.time()
    try:
        result = run_module('mysql_expand', params)
    finally:
        elapsed = time.time() - t0
        stop.set()
        thread.join(30)
        blocker.rollback()
        blocker.close()
    assert result['failed']
    msg = result['msg']
    assert 'expand[0] add_column users.phone' in msg and 'gave up after 3 attempts' in msg
    assert 'connection %d' % blocker_id in msg, msg
    assert 3.0 <= elapsed < 20, elapsed
    # other sessions queued behind our pending ALTER for at most about one lock_wait_timeout at a time
    assert latencies and max(latencies) < 1.8, max(latencies)
    print('metadata-lock test: module ran %.2fs, %d probe queries, probe max %.3fs, median %.4fs'
          % (elapsed, len(latencies), max(latencies), sorted(latencies)[len(latencies) // 2]))
    cols = db.query('SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s', (db.name, 'users'))
    assert ('phone',) not in cols
    # once the long transaction is gone the same run succeeds
    assert ok(run_module('mysql_expand', params))['changed'] is True


def test_second_concurrent_run_waits_for_the_first(users_db, run_module):
    db = users_db
    results = []

    def go():
        results.append(expand(run_module, db, ADDRESSES))
    threads = [threading.Thread(target=go) for _n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(not r.get('failed') for r in results), results
    assert sorted(r['changed'] for r in results) == [False, False, True]
    assert sum(len(r['statements']) for r in results) == 1


def test_migration_as_mapping_and_copy_is_not_mutated(users_db, run_module):
    data = load(ADDRESSES)
    original = copy.deepcopy(data)
    ok(expand(run_module, users_db, data))
    assert data == original


def test_contract_that_failed_before_changing_anything_does_not_block_rollback(users_db, run_module):
    db = users_db
    ok(expand(run_module, db, ADDRESSES))
    blocker = db.root_connect()
    blocker.autocommit(False)
    try:
        with blocker.cursor() as cur:
            cur.execute('SELECT COUNT(*) FROM users')
            cur.fetchall()
        result = expand(run_module, db, ADDRESSES, 'contract', lock_wait_timeout=1, ddl_retries=0)
    finally:
        blocker.rollback()
        blocker.close()
    assert result['failed'] and 'contract[0] drop_columns' in result['msg'] and 'gave up after 1 attempts' in result['msg']
    assert db.query("SELECT status FROM zdt_migration_step WHERE migration_id = 2 AND phase = 'contract'") == (('failed',),)
    rollback = ok(expand(run_module, db, ADDRESSES, 'rollback'))
    assert rollback['statements'] == ['DROP TABLE `addresses`']
