"""SQL generation of the sync triggers, the backfill and the verifier (no server)."""
import os

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError, IdentifierError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import SyncSpec, parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_triggers import (
    SyncPlan, capacity_problem, guard_var, is_ours, owned_live_triggers, run_ddl, same_value, trigger_name)
from ansible_collections.zdt.bluegreen.plugins.module_utils import backfill as bf
from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_state
from ansible_collections.zdt.bluegreen.plugins.module_utils.verify_sync import norm_expr, row_hash


def cross_plan(direction='both', autoinc='id', types=('varchar', 'varchar')):
    spec = SyncSpec(0, 'users', 'id', ('address_line_1', 'address_line_2'), 'addresses', 'user_id',
                    ('address_line_1', 'address_line_2'), direction, 'cross')
    return SyncPlan(2, spec, types, types, 'int', target_autoinc=autoinc, to_key_index='addresses_user_id')


def same_plan(direction='both'):
    spec = SyncSpec(1, 'items', 'id', ('old_name',), 'items', 'id', ('new_name',), direction, 'same')
    return SyncPlan(3, spec, ['varchar'], ['varchar'], 'int')


def test_trigger_names_are_deterministic_and_prefixed():
    names = [t.name for t in cross_plan().triggers()]
    assert names == ['zdt_m2_s0_fwd_del', 'zdt_m2_s0_fwd_upd', 'zdt_m2_s0_fwd_ins',
                     'zdt_m2_s0_bwd_del', 'zdt_m2_s0_bwd_upd', 'zdt_m2_s0_bwd_ins']
    assert [t.name for t in cross_plan('forward').triggers()] == names[:3]
    assert trigger_name(2 ** 63 - 1, 999, 'fwd', 'ins').startswith('zdt_') and len(trigger_name(2 ** 63 - 1, 999, 'fwd', 'ins')) <= 64


def test_cross_triggers_timing_tables_and_upsert():
    trig = dict((t.name, t) for t in cross_plan().triggers())
    ins = trig['zdt_m2_s0_fwd_ins']
    assert (ins.timing, ins.event, ins.table) == ('AFTER', 'INSERT', 'users')
    assert ('INSERT INTO `addresses` (`user_id`, `address_line_1`, `address_line_2`) VALUES (NEW.`id`, NEW.`address_line_1`, '
            'NEW.`address_line_2`) ON DUPLICATE KEY UPDATE `address_line_1` = NEW.`address_line_1`') in ins.body
    # the new table's own AUTO_INCREMENT key is never written by the triggers
    assert '`id`, `user_id`' not in ins.body
    upd = trig['zdt_m2_s0_fwd_upd'].body
    assert 'IF NEW.`address_line_1` IS NULL AND NEW.`address_line_2` IS NULL THEN' in upd
    assert 'DELETE FROM `addresses` WHERE `user_id` = NEW.`id`;' in upd
    assert 'DELETE FROM `addresses` WHERE `user_id` = OLD.`id`;' in trig['zdt_m2_s0_fwd_del'].body
    assert 'UPDATE `users` SET `address_line_1` = NULL, `address_line_2` = NULL WHERE `id` = OLD.`user_id`;' in trig['zdt_m2_s0_bwd_del'].body
    assert 'UPDATE `users` SET `address_line_1` = NEW.`address_line_1`' in trig['zdt_m2_s0_bwd_ins'].body
    assert trig['zdt_m2_s0_bwd_ins'].table == 'addresses'
    assert ins.create_sql().startswith('CREATE TRIGGER `zdt_m2_s0_fwd_ins` AFTER INSERT ON `users` FOR EACH ROW zdt_sync: BEGIN')
    assert trig['zdt_m2_s0_bwd_upd'].drop_sql() == 'DROP TRIGGER IF EXISTS `zdt_m2_s0_bwd_upd`'


def test_guard_is_statement_scoped_and_cleared_on_error():
    g = guard_var(2, 0)
    for t in cross_plan().triggers():
        body = t.body
        # cleared and re-raised on any error: a failing statement cannot leave sync disabled
        assert 'DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN SET %s = NULL; RESIGNAL; END;' % g in body
        # the guard value is the statement start: a stale value never matches a later statement
        assert 'IF @zdt_copy_m2_s0 IS NULL AND NOT (%s <=> NOW(6) + 0) THEN' % g in body
        assert body.index('SET %s = NOW(6) + 0;' % g) < body.rindex('SET %s = NULL;' % g)
        assert body.startswith('zdt_sync: BEGIN') and body.endswith('END')


def test_change_detection_is_binary_for_strings():
    assert same_value('a', 'b', 'string') == 'CAST(CONVERT(a USING utf8mb4) AS BINARY) <=> CAST(CONVERT(b USING utf8mb4) AS BINARY)'
    assert same_value('a', 'b', 'other') == 'a <=> b'
    upd = dict((t.name, t) for t in cross_plan().triggers())['zdt_m2_s0_fwd_upd'].body
    # OLD and NEW of one column share its character set: their bytes are compared (a case or trailing-space change is a change)
    assert 'NOT (CAST(OLD.`address_line_1` AS BINARY) <=> CAST(NEW.`address_line_1` AS BINARY))' in upd
    assert 'NOT (CAST(OLD.`address_line_2` AS BINARY) <=> CAST(NEW.`address_line_2` AS BINARY))' in upd


def test_same_table_triggers_are_before_triggers_setting_new():
    trig = dict((t.name, t) for t in same_plan().triggers())
    assert sorted(trig) == ['zdt_m3_s1_same_ins', 'zdt_m3_s1_same_upd']
    ins, upd = trig['zdt_m3_s1_same_ins'], trig['zdt_m3_s1_same_upd']
    assert ins.timing == upd.timing == 'BEFORE'
    assert 'IF NEW.`new_name` IS NULL THEN\n    SET NEW.`new_name` = NEW.`old_name`;' in ins.body
    assert 'ELSEIF NEW.`old_name` IS NULL THEN\n    SET NEW.`old_name` = NEW.`new_name`;' in ins.body
    assert 'ELSEIF NOT (' in upd.body and 'SET NEW.`old_name` = NEW.`new_name`;' in upd.body
    # no other table is touched, so no guard is needed
    assert 'UPDATE ' not in upd.body and 'INSERT ' not in ins.body and '@zdt_sync' not in ins.body
    fwd = dict((t.name, t) for t in same_plan('forward').triggers())
    assert 'SET NEW.`new_name` = NEW.`old_name`;' in fwd['zdt_m3_s1_same_upd'].body
    assert 'SET NEW.`old_name`' not in fwd['zdt_m3_s1_same_upd'].body


@pytest.mark.parametrize('name', ['users`; DROP TABLE users; --', "a'b", 'a;b', 'a b', 'a-b', '', 'x' * 65])
def test_hostile_identifiers_are_rejected_before_sql_exists(name):
    spec = SyncSpec(0, name, 'id', ('c',), 'addresses', 'user_id', ('c',), 'both', 'cross')
    plan = SyncPlan(2, spec, ['int'], ['int'], 'int', target_autoinc='id')
    with pytest.raises(IdentifierError):
        plan.triggers()


def test_reserved_and_unicode_identifiers_are_quoted():
    spec = SyncSpec(0, 'select', 'order', ('straße',), 'adrèsses', 'from', ('größe',), 'both', 'cross')
    body = '\n'.join(t.create_sql() for t in SyncPlan(9, spec, ['varchar'], ['varchar'], 'int').triggers())
    assert 'ON `select` FOR EACH ROW' in body and 'INSERT INTO `adrèsses` (`from`, `größe`)' in body


def test_spec_from_the_seed_migration_file():
    mig = parse_migration(os.path.join(os.path.dirname(__file__), '..', '..', 'sample', 'migrations', '002_addresses.yml'))
    plan = SyncPlan(mig.id, mig.sync[0], ['varchar', 'varchar'], ['varchar', 'varchar'], 'int', target_autoinc='id')
    assert len(plan.triggers()) == 6 and plan.kind == 'cross'


# ---------------------------------------------------------------- backfill SQL

def test_strategy_choice():
    assert bf.choose_strategy(cross_plan()) == 'values'
    assert bf.choose_strategy(cross_plan(autoinc=None)) == 'select'
    assert bf.choose_strategy(cross_plan(types=('double', 'varchar'))) == 'select'
    assert bf.choose_strategy(same_plan()) == 'update'


def test_literal_expressions_are_exact_per_type():
    assert bf.literal_expr('`c`', 'varchar') == "IF(`c` IS NULL, 'NULL', CONCAT('_utf8mb4', QUOTE(CONVERT(`c` USING utf8mb4))))"
    assert bf.literal_expr('`c`', 'blob') == "IF(`c` IS NULL, 'NULL', CONCAT('X''', HEX(`c`), ''''))"
    assert bf.literal_expr('`c`', 'int') == "IFNULL(CAST(`c` AS CHAR), 'NULL')"
    assert bf.literal_expr('`c`', 'datetime') == "IFNULL(QUOTE(`c`), 'NULL')"


def test_range_condition():
    assert bf.range_condition('`id`', None, None) == ('1 = 1', [])
    assert bf.range_condition('`id`', 5, None) == ('`id` > %s', [5])
    assert bf.range_condition('`id`', 5, 10) == ('`id` > %s AND `id` <= %s', [5, 10])


class FakeCursor(object):
    def __init__(self, log, script):
        self.log, self.script = log, script
        self.rowcount = 0

    def execute(self, sql, args=None):
        self.log.append((sql, args))
        if self.script:
            exc = self.script.pop(0)
            if exc is not None:
                raise exc

    def fetchone(self):
        return (1,)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


class FakeConn(object):
    def __init__(self, script=None):
        self.log = []
        self.script = list(script or [])

    def cursor(self):
        return FakeCursor(self.log, self.script)


class LockTimeout(Exception):
    pass


def test_run_ddl_retries_lock_timeouts_with_backoff_then_gives_up():
    sleeps = []
    conn = FakeConn([None, LockTimeout(1205, 'Lock wait timeout exceeded'), None])
    run_ddl(conn, ['CREATE TRIGGER x'], lock_wait_timeout=2, retries=3, sleep=sleeps.append)
    assert conn.log[0] == ('SET SESSION lock_wait_timeout = %s', (2,))
    assert [entry[0] for entry in conn.log[1:]] == ['CREATE TRIGGER x', 'CREATE TRIGGER x'] and len(sleeps) == 1
    conn = FakeConn([None] + [LockTimeout(1205, 'timeout')] * 5)
    with pytest.raises(Exception) as err:
        run_ddl(conn, ['CREATE TRIGGER y'], retries=2, sleep=lambda s: None)
    assert 'gave up after 2 retries' in str(err.value)


def test_checkpoint_keys_round_trip_exactly():
    for key in (1, 2 ** 63 - 1, 'abc', 'ü', b'\x00\xff'):
        assert sync_state.decode_key(sync_state.encode_key(key)) == key
    assert sync_state.encode_key(None) is None


def test_lock_name_fits_mysql_limit():
    assert sync_state.lock_name('shop', 2) == 'zdt_backfill_shop_2'
    assert len(sync_state.lock_name('x' * 64, 2 ** 63 - 1)) <= 64


def test_progress_rate_and_eta():
    import datetime
    t0 = datetime.datetime(2024, 1, 1, 0, 0, 0)
    row = dict(state='running', rows_total=1000, rows_done=400, run_rows=400, run_started_at=t0,
               updated_at=t0 + datetime.timedelta(seconds=2))
    assert sync_state.progress(row) == dict(state='running', rows_done=400, rows_total=1000, rows_per_second=200.0, eta_seconds=3.0)
    assert sync_state.progress(None)['state'] == 'not_started'
    row.update(state='done', rows_done=1000)
    assert sync_state.progress(row)['eta_seconds'] == 0


def test_verify_hash_renders_null_distinctly_and_strings_as_hex():
    assert norm_expr('`c`', 'varchar') == "IF(`c` IS NULL, 'N', CONCAT('V', HEX(CONVERT(`c` USING utf8mb4))))"
    h = row_hash('`id`', 'int', ['`a`'], ['varchar'])
    assert h.startswith("CAST(CONV(LEFT(MD5(CONCAT_WS('|', ") and "CAST(`id` AS CHAR)" in h


def test_is_ours_requires_label_table_and_event():
    t = cross_plan().triggers()[0]
    live = dict(table=t.table, timing=t.timing, event=t.event, body=t.body)
    assert is_ours(live, t)
    assert not is_ours(dict(live, body='BEGIN SET @x = 1; END'), t)
    assert not is_ours(dict(live, table='other'), t)


def test_owned_live_triggers_matches_only_our_pattern_and_label(monkeypatch):
    from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_triggers as st
    plan = cross_plan()
    live = dict((t.name, dict(table=t.table, timing=t.timing, event=t.event, body=t.body)) for t in plan.triggers())
    live['zdt_m2_s0_fwd_ins'] = dict(live['zdt_m2_s0_fwd_ins'])
    live['zdt_users_audit'] = dict(table='users', timing='AFTER', event='INSERT', body='zdt_sync: BEGIN END')
    live['zdt_m22_s0_fwd_ins'] = dict(live['zdt_m2_s0_fwd_ins'])
    live['zdt_m2_s0_bwd_del'] = dict(live['zdt_m2_s0_bwd_del'], body='BEGIN END')   # same name, not ours
    monkeypatch.setattr(st, 'existing_triggers', lambda conn, db: live)
    names = [t.name for t in owned_live_triggers(None, 'db', 2)]
    assert sorted(names) == ['zdt_m2_s0_bwd_ins', 'zdt_m2_s0_bwd_upd', 'zdt_m2_s0_fwd_del', 'zdt_m2_s0_fwd_ins', 'zdt_m2_s0_fwd_upd']
    assert names[:3] == ['zdt_m2_s0_bwd_ins', 'zdt_m2_s0_bwd_upd', 'zdt_m2_s0_fwd_ins']


def test_cascade_fk_replaces_the_forward_delete_trigger_and_update_is_the_upsert_alone():
    spec = SyncSpec(0, 'users', 'id', ('a',), 'addresses', 'user_id', ('a',), 'both', 'cross')
    plan = SyncPlan(2, spec, ['varchar'], ['varchar'], 'int', target_autoinc='id', cascade_delete=True)
    names = [t.name for t in plan.triggers()]
    assert 'zdt_m2_s0_fwd_del' not in names and len(names) == 5
    upd = dict((t.name, t) for t in plan.triggers())['zdt_m2_s0_fwd_upd'].body
    # no UPDATE of the new row before the upsert: it would gap-lock a missing row (see the integration test)
    assert 'UPDATE `addresses`' not in upd and 'ROW_COUNT()' not in upd
    assert upd.count('INSERT INTO `addresses` (`user_id`, `a`) VALUES (NEW.`id`, NEW.`a`) ON DUPLICATE KEY UPDATE `a` = NEW.`a`;') == 1


def _col(column_type, length=None, charset=None, precision=None, scale=None, fsp=None):
    data_type = column_type.split('(')[0].split()[0]
    return dict(type=data_type, column_type=column_type, length=length, charset=charset, precision=precision, scale=scale, fsp=fsp)


@pytest.mark.parametrize('src,dst,fits', [
    (_col('int(11)'), _col('bigint(20)'), True),
    (_col('bigint(20)'), _col('int(11)'), False),
    (_col('int(10) unsigned'), _col('int(11)'), False),
    (_col('int(10) unsigned'), _col('bigint(20)'), True),
    (_col('smallint(6)'), _col('mediumint(8) unsigned'), False),
    (_col('varchar(100)', 100, 'utf8mb4'), _col('varchar(100)', 100, 'utf8mb4'), True),
    (_col('varchar(100)', 100, 'utf8mb4'), _col('varchar(99)', 99, 'utf8mb4'), False),
    (_col('varchar(100)', 100, 'latin1'), _col('text', 65535, 'utf8mb4'), True),
    (_col('varchar(100)', 100, 'utf8mb4'), _col('varchar(100)', 100, 'latin1'), False),
    (_col('decimal(10,2)', precision=10, scale=2), _col('decimal(12,4)', precision=12, scale=4), True),
    (_col('decimal(10,2)', precision=10, scale=2), _col('decimal(10,4)', precision=10, scale=4), False),
    (_col('double'), _col('float'), False),
    (_col('float'), _col('double'), True),
    (_col("enum('a','b')"), _col("enum('a','b')"), True),
    (_col("enum('a','b')"), _col("enum('a')"), False),
    (_col('datetime(3)', fsp=3), _col('datetime(6)', fsp=6), True),
    (_col('datetime(6)', fsp=6), _col('datetime', fsp=0), False),
    (_col('varchar(10)', 10, 'utf8mb4'), _col('int(11)'), False),
    (_col('varbinary(16)', 16), _col('varbinary(32)', 32), True),
])
def test_capacity_problem(src, dst, fits):
    assert (capacity_problem(src, dst) is None) is fits, capacity_problem(src, dst)


class _WarningCursor(object):
    """Just enough of a PyMySQL cursor for Backfill._check_warnings."""

    def __init__(self, warnings):
        self.warnings = warnings
        self._result = type('Result', (), {'warning_count': len(warnings)})()

    def execute(self, sql, args=None):
        assert sql == 'SHOW WARNINGS'

    def fetchall(self):
        return self.warnings


def _backfill():
    return bf.Backfill(None, 'app', cross_plan())


def test_deprecation_notes_do_not_fail_a_chunk():
    _backfill()._check_warnings(_WarningCursor([('Warning', 1287, "'VALUES function' is deprecated")]), 'copying a chunk')


def test_any_other_warning_fails_the_chunk_naming_it():
    with pytest.raises(DatabaseError, match='1265'):
        _backfill()._check_warnings(_WarningCursor([('Warning', 1287, 'deprecated'), ('Warning', 1265, 'Data truncated')]), 'copying')


class _StatusConn(object):
    """Answers SHOW GLOBAL STATUS LIKE 'Threads_running' with the next of ``values``."""

    def __init__(self, values):
        self.values = list(values)
        self.queries = 0

    def cursor(self):
        conn = self

        class Cursor(object):
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def execute(self, sql, args=None):
                assert sql == "SHOW GLOBAL STATUS LIKE 'Threads_running'"
                conn.queries += 1

            def fetchone(self):
                return ('Threads_running', str(conn.values.pop(0)))
        return Cursor()


def test_backfill_pauses_while_threads_running_is_above_the_limit():
    slept = []
    runner = bf.Backfill(_StatusConn([40, 26, 25]), 'app', cross_plan(), max_threads_running=25, sleep=slept.append)
    runner.throttle()
    assert slept == [0.25, 0.25] and runner.throttled_seconds == 0.5


def test_throttling_off_with_zero():
    conn = _StatusConn([])
    bf.Backfill(conn, 'app', cross_plan(), max_threads_running=0).throttle()
    assert conn.queries == 0
