"""alter_column against a real MariaDB: writers of both versions through expand, backfill, verify and contract.

One migration changes five columns of one table at once (rename with a transform, LOWER, NOT NULL filling NULLs,
INT -> BIGINT, a split) plus an in-place widening, so every kind races the same writers in one short run.
"""
import os
import threading
import time

import pytest

from zdt_lab import REPO_ROOT
from zdt_lab import column_races as races
from zdt_lab.modules import start_module
from zdt_lab.sync_races import kill_when, wait_lock_released

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_apply import apply_phase
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_runner import sync_absent, sync_present

MIGRATION = parse_migration(races.MIGRATION)


def columns(conn):
    return [r[0] for r in races.execute(conn, 'SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() '
                                              "AND TABLE_NAME = 'customers' ORDER BY ORDINAL_POSITION")]


@pytest.mark.parametrize('run', range(2))
def test_every_kind_exact_with_writers_of_both_versions(db, run):
    conn = db.connect()
    races.create_customers(conn, 3000)
    model = races.initial_model(conn)
    lock = threading.Lock()
    old = races.start_writers(db, model, lock, 'old', seed=run, slots=2, slot_base=0)
    new = []
    try:
        time.sleep(0.2)
        expanded = apply_phase(db.connect(), MIGRATION, 'expand', db.name)
        assert expanded.changed and len(expanded.statements) == 7
        assert any('MODIFY COLUMN `note` VARCHAR(40)' in s and 'LOCK=NONE' in s for s in expanded.statements)
        # the triggers first, then the new version starts writing while the backfill runs
        sync_present(db.connect(), db.name, MIGRATION, backfill=False, verify=False)
        new = races.start_writers(db, model, lock, 'new', seed=run, slots=2, slot_base=2)
        time.sleep(0.2)
        result = sync_present(db.connect(), db.name, MIGRATION, chunk_size=50, chunk_time=0.005)
        assert result['verify']['mismatches'] == 0 and result['backfill']['chunks'] >= 10
        assert result['backfill']['rows_copied'] > 0
        time.sleep(0.2)
        races.pause(old + new)
        assert races.differences(conn, model) == {}
        # a second run changes nothing and verifies again
        again = sync_present(db.connect(), db.name, MIGRATION)
        assert again['changed'] is False and again['verify']['mismatches'] == 0
        assert apply_phase(db.connect(), MIGRATION, 'expand', db.name).changed is False
        # the old version is gone; the new one keeps writing through the trigger drop and the contract
        ops = races.stop(old)
        old = []
        races.resume(new)
        assert sync_absent(db.connect(), db.name, MIGRATION)['changed'] is True
        contracted = apply_phase(db.connect(), MIGRATION, 'contract', db.name)
        assert [s.split(',')[0] for s in contracted.statements] == [
            'ALTER TABLE `customers` DROP COLUMN `%s`' % c for c in ('nick', 'email', 'phone', 'full_name', 'n')]
        time.sleep(0.2)
        ops += races.stop(new)
        new = []
    finally:
        races.stop(old + new) if old + new else None
    assert ops > 300
    assert columns(conn) == ['id', 'note', 'handle', 'email_lc', 'phone2', 'first_name', 'last_name', 'n64']
    assert races.differences(conn, model, new_only=True) == {}
    assert apply_phase(db.connect(), MIGRATION, 'contract', db.name).changed is False


def test_check_mode_changes_nothing_and_expressions_are_checked_by_the_server(db, run_module):
    conn = db.connect()
    races.create_customers(conn, 50)
    before = columns(conn)
    args = dict(db.params, migration=races.MIGRATION)
    planned = run_module('mysql_expand', args, check_mode=True)
    assert not planned.get('failed'), planned
    assert planned['changed'] is True and len(planned['statements']) == 7
    sync_plan = run_module('mysql_trigger_sync', args, check_mode=True)
    assert not sync_plan.get('failed'), sync_plan
    assert sync_plan['changed'] is True and len(sync_plan['triggers']) == 10 and sync_plan['backfill']['rows_total'] == 250
    assert columns(conn) == before and races.execute(conn, 'SHOW TRIGGERS') == ()
    # an expression the server cannot resolve fails naming its field, before anything changes
    bad = dict(races.MIGRATION, expand=[dict(op) for op in races.MIGRATION['expand']])
    bad['expand'][1] = {'alter_column': dict(races.MIGRATION['expand'][1]['alter_column'], up='LOWER(emial)')}
    for check_mode in (True, False):
        res = run_module('mysql_expand', dict(db.params, migration=bad), check_mode=check_mode)
        assert res.get('failed') and res['msg'].startswith('expand[1].alter_column.up: '), res
        assert 'emial' in res['msg']
    # down may name the new column (added virtually before the expand), up may not
    bad['expand'][1] = {'alter_column': dict(races.MIGRATION['expand'][1]['alter_column'], up='LOWER(email_lc)')}
    res = run_module('mysql_expand', dict(db.params, migration=bad))
    assert res.get('failed') and res['msg'].startswith('expand[1].alter_column.up: '), res
    bad['expand'][1] = {'alter_column': dict(races.MIGRATION['expand'][1]['alter_column'], down='UPPER(email_lc, 2)')}
    res = run_module('mysql_expand', dict(db.params, migration=bad))
    assert res.get('failed') and res['msg'].startswith('expand[1].alter_column.down: '), res
    assert columns(conn) == before
    assert races.execute(conn, "SHOW TABLES LIKE 'zdt_%'") == ()


def test_refusals_name_the_field_before_any_change(db):
    conn = db.connect()
    races.create_customers(conn, 10)

    def refused(op, phase='expand'):
        mig = parse_migration({'id': 30, 'description': 'x', 'expand': [{'alter_column': op}]})
        with pytest.raises(Exception) as err:
            if phase == 'expand':
                apply_phase(db.connect(), mig, 'expand', db.name)
            else:
                sync_present(db.connect(), db.name, mig)
        return str(err.value)

    assert refused({'table': 'customers', 'column': 'nick', 'type': 'VARCHAR(10)'}).startswith('expand[0] alter_column: an in-place')
    assert refused({'table': 'customers', 'column': 'n', 'type': 'BIGINT'}).startswith('expand[0] alter_column: an in-place')
    assert 'does not exist' in refused({'table': 'customers', 'column': 'nope', 'rename_to': 'x'})
    assert refused({'table': 'customers', 'column': 'id', 'rename_to': 'id2'}).startswith('expand[0].alter_column.column')
    assert columns(conn) == ['id', 'nick', 'email', 'phone', 'full_name', 'n', 'note']
    # a widening is asked of the server with ALGORITHM=INSTANT (or INPLACE, LOCK=NONE): never a table copy
    # (MariaDB 10.11 extends a VARCHAR past 255 bytes instantly)
    widened = apply_phase(db.connect(), parse_migration({'id': 32, 'description': 'x', 'expand': [
        {'alter_column': {'table': 'customers', 'column': 'nick', 'type': 'VARCHAR(300)'}}]}), 'expand', db.name)
    (statement,) = widened.statements
    assert statement.startswith("ALTER TABLE `customers` MODIFY COLUMN `nick` VARCHAR(300) CHARACTER SET `utf8mb4` "
                                "COLLATE `utf8mb4_general_ci` NOT NULL DEFAULT '', ALGORITHM=")
    assert statement.endswith(('ALGORITHM=INSTANT', 'ALGORITHM=INPLACE, LOCK=NONE'))
    # NOT NULL without an up that fills NULLs: the sync refuses before creating a trigger
    mig = parse_migration({'id': 31, 'description': 'x', 'expand': [
        {'alter_column': {'table': 'customers', 'column': 'phone', 'rename_to': 'phone3', 'nullable': False, 'default': ''}}]})
    apply_phase(db.connect(), mig, 'expand', db.name)
    with pytest.raises(SpecError) as err:
        sync_present(db.connect(), db.name, mig)
    assert err.value.field == 'expand[0].alter_column.up'
    assert races.execute(conn, 'SHOW TRIGGERS') == ()


def test_kill_mid_backfill_then_resume_exact(db, run_module):
    conn = db.connect()
    races.create_customers(conn, 30000)
    model = races.initial_model(conn)
    assert not run_module('mysql_expand', dict(db.params, migration=races.MIGRATION)).get('failed')
    args = dict(db.params, migration=races.MIGRATION, chunk_size=50, chunk_time=0.002)
    proc, path = start_module('mysql_trigger_sync', args)

    def copied_some():
        if not races.execute(conn, "SHOW TABLES LIKE 'zdt_sync_progress'"):
            return False
        return int(races.execute(conn, 'SELECT COALESCE(SUM(rows_done), 0) FROM zdt_sync_progress')[0][0]) >= 3000
    kill_when(proc, path, copied_some)
    wait_lock_released(conn, 'zdt_backfill_%s_17' % db.name)
    state = races.execute(conn, 'SELECT sync_index, state FROM zdt_sync_progress ORDER BY sync_index')
    assert ('running',) in [(s,) for _i, s in state], state
    res = run_module('mysql_trigger_sync', dict(db.params, migration=races.MIGRATION))
    assert not res.get('failed'), res
    assert res['backfill']['resumed_from'] is not None and res['verify']['mismatches'] == 0
    assert res['verify']['rows_checked'] == 5 * 30000
    assert races.differences(conn, model) == {}


EXAMPLES = ['example_alter_column_rename.yml', 'example_alter_column_type.yml', 'example_alter_column_not_null.yml',
            'example_alter_column_transform.yml', 'example_alter_column_split.yml', 'example_add_foreign_key.yml',
            'example_sync_mapped.yml', 'example_sync_composite_key.yml']


def test_every_worked_example_runs_a_whole_cycle(db):
    """Each sample/migrations/example_*.yml on the tables its header assumes: expand, sync, a second run that changes
    nothing, trigger drop and contract."""
    conn = db.connect()
    for sql in ("CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, nick VARCHAR(20) NOT NULL DEFAULT '', "
                'phone VARCHAR(20), email VARCHAR(100), full_name VARCHAR(100))',
                "INSERT INTO customers (nick, phone, email, full_name) SELECT CONCAT(' N', seq), IF(seq % 2, NULL, seq), "
                "CONCAT('U', seq, '@X.org'), CONCAT('A', seq, ' B', seq) FROM seq_1_to_100",
                'CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT NULL, amount_cents INT, comment VARCHAR(20) NULL)',
                'INSERT INTO orders (customer_id, amount_cents) SELECT seq, seq * 100 FROM seq_1_to_100',
                'CREATE TABLE people (id INT AUTO_INCREMENT PRIMARY KEY, full_name VARCHAR(100) NULL, email VARCHAR(100) NULL)',
                "INSERT INTO people (full_name, email) SELECT CONCAT('C', seq, ' D', seq), CONCAT('P', seq, '@Y.org') FROM seq_1_to_100",
                'CREATE TABLE memberships (member_id INT, item_id INT, note VARCHAR(50) NULL, qty INT NULL, PRIMARY KEY (member_id, item_id))',
                "INSERT INTO memberships SELECT seq DIV 5, seq MOD 5, CONCAT('n', seq), seq FROM seq_1_to_100"):
        races.execute(conn, sql)
    for name in EXAMPLES:
        mig = parse_migration(os.path.join(REPO_ROOT, 'sample', 'migrations', name))
        assert apply_phase(db.connect(), mig, 'expand', db.name).changed, name
        assert not apply_phase(db.connect(), mig, 'expand', db.name).changed, name
        if mig.sync:
            synced = sync_present(db.connect(), db.name, mig)
            assert synced['changed'] and synced['verify']['mismatches'] == 0 and synced['backfill']['rows_total'] == 100, name
            assert not sync_present(db.connect(), db.name, mig)['changed'], name
            assert sync_absent(db.connect(), db.name, mig)['changed'], name
        apply_phase(db.connect(), mig, 'contract', db.name)
    assert columns(conn) == ['id', 'handle', 'phone_number', 'email_lc', 'first_name', 'last_name']


def test_rollback_after_the_sync_drops_the_new_columns_and_keeps_the_old_ones(db):
    conn = db.connect()
    races.create_customers(conn, 200)
    before = races.execute(conn, 'SELECT * FROM customers ORDER BY id')
    apply_phase(db.connect(), MIGRATION, 'expand', db.name)
    sync_present(db.connect(), db.name, MIGRATION)
    with pytest.raises(Exception) as err:     # the triggers still read the new columns
        apply_phase(db.connect(), MIGRATION, 'rollback', db.name)
    assert 'drop the sync triggers first' in str(err.value)
    sync_absent(db.connect(), db.name, MIGRATION)
    back = apply_phase(db.connect(), MIGRATION, 'rollback', db.name)
    assert back.changed and len(back.statements) == 6      # the in-place widening of note is kept
    assert columns(conn) == ['id', 'nick', 'email', 'phone', 'full_name', 'n', 'note']
    assert [r[:6] for r in races.execute(conn, 'SELECT * FROM customers ORDER BY id')] == [r[:6] for r in before]
