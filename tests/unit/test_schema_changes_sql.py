# -*- coding: utf-8 -*-
import os

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError, DriftError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils import schema_changes as sc

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), 'sample', 'migrations')
ADDRESSES = parse_migration(os.path.join(FIXTURES, '002_addresses.yml'))
USERS_COLS = ['id', 'name', 'email', 'address_line_1', 'address_line_2']


def users_only(**kw):
    users = sc.TableModel('users', USERS_COLS, {'PRIMARY': {'columns': ['id'], 'unique': True}})
    return sc.SchemaModel('app', {'users': users}, **kw)


def expanded():
    m = users_only()
    sc.plan_steps(m, ADDRESSES, 'expand')
    return m


def test_expand_creates_table_with_fk():
    res = sc.plan_steps(users_only(), ADDRESSES, 'expand')
    assert [s.statement for s in res.steps] == [
        'CREATE TABLE `addresses` (`id` INT NOT NULL AUTO_INCREMENT, `user_id` INT NOT NULL, `address_line_1` VARCHAR(100) NULL, '
        '`address_line_2` VARCHAR(100) NULL, PRIMARY KEY (`id`), UNIQUE KEY `addresses_user_id` (`user_id`), '
        'CONSTRAINT `addresses_user_fk` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`) ON DELETE CASCADE) ENGINE=InnoDB']
    assert res.steps[0].tables == ('addresses',) and res.skipped == []


def test_expand_is_idempotent_against_the_model():
    m = expanded()
    res = sc.plan_steps(m, ADDRESSES, 'expand')
    assert res.steps == [] and [s.op.field for s in res.skipped] == ['expand[0]']


def test_expand_missing_referenced_table_fails_before_anything():
    with pytest.raises(DatabaseError) as err:
        sc.plan_steps(sc.SchemaModel('app', {}), ADDRESSES, 'expand')
    assert 'expand[0].create_table.foreign_keys[0].references.table' in str(err.value) and 'users' in str(err.value)


def test_existing_table_with_other_columns_is_not_guessed():
    m = users_only()
    m.tables['addresses'] = sc.TableModel('addresses', ['id', 'user_id'])
    with pytest.raises(DatabaseError) as err:
        sc.plan_steps(m, ADDRESSES, 'expand')
    assert 'address_line_1' in str(err.value)


def mig(expand=None, contract=None):
    return parse_migration({'id': 9, 'description': 'test', 'expand': expand or [], 'contract': contract or []})


def test_add_column_instant_with_inplace_fallback():
    m = mig(expand=[{'add_column': {'table': 'users', 'column': {'name': 'phone', 'type': 'VARCHAR(20)', 'default': 'n/a'}}}])
    res = sc.plan_steps(users_only(), m, 'expand')
    step = res.steps[0]
    assert step.statement == "ALTER TABLE `users` ADD COLUMN `phone` VARCHAR(20) NULL DEFAULT 'n/a', ALGORITHM=INSTANT"
    assert step.fallback == "ALTER TABLE `users` ADD COLUMN `phone` VARCHAR(20) NULL DEFAULT 'n/a', ALGORITHM=INPLACE, LOCK=NONE"


def test_add_column_to_missing_table_and_existing_column():
    m = mig(expand=[{'add_column': {'table': 'nosuch', 'column': {'name': 'x', 'type': 'INT'}}}])
    with pytest.raises(DatabaseError) as err:
        sc.plan_steps(users_only(), m, 'expand')
    assert 'expand[0].add_column.table' in str(err.value) and 'nosuch does not exist' in str(err.value)
    m = mig(expand=[{'add_column': {'table': 'users', 'column': {'name': 'EMAIL', 'type': 'INT'}}}])
    assert sc.plan_steps(users_only(), m, 'expand').steps == []


def test_create_index_checks_columns_and_existing_definition():
    m = mig(expand=[{'create_index': {'table': 'users', 'name': 'users_email', 'columns': ['email'], 'unique': True}}])
    res = sc.plan_steps(users_only(), m, 'expand')
    assert res.steps[0].statement == 'ALTER TABLE `users` ADD UNIQUE INDEX `users_email` (`email`), ALGORITHM=INPLACE, LOCK=NONE'
    bad = mig(expand=[{'create_index': {'table': 'users', 'name': 'i', 'columns': ['nope']}}])
    with pytest.raises(DatabaseError) as err:
        sc.plan_steps(users_only(), bad, 'expand')
    assert 'expand[0].create_index.columns[0]' in str(err.value)
    model = users_only()
    model.tables['users'].indexes['users_email'] = dict(name='users_email', columns=['name'], unique=False)
    with pytest.raises(DatabaseError) as err:
        sc.plan_steps(model, m, 'expand')
    assert 'different definition' in str(err.value)


def test_contract_of_design_example():
    res = sc.plan_steps(expanded(), ADDRESSES, 'contract')
    assert [s.statement for s in res.steps] == [
        'ALTER TABLE `users` DROP COLUMN `address_line_1`, DROP COLUMN `address_line_2`, ALGORITHM=INSTANT',
        'ALTER TABLE `addresses` ADD INDEX `addresses_user` (`user_id`), ALGORITHM=INPLACE, LOCK=NONE',
        'ALTER TABLE `addresses` DROP INDEX `addresses_user_id`, ALGORITHM=INPLACE, LOCK=NONE']
    assert res.steps[0].fallback.endswith('ALGORITHM=INPLACE, LOCK=NONE')


def test_contract_twice_plans_nothing():
    m = expanded()
    first = sc.plan_steps(m, ADDRESSES, 'contract')
    ran = dict((('contract', s.index), 'ran') for s in first.steps)
    res = sc.plan_steps(m, ADDRESSES, 'contract', step_status=ran)
    assert res.steps == [] and len(res.skipped) == 3


@pytest.mark.parametrize('status', ['running', 'ran'])
def test_contract_resumed_after_a_kill_skips_what_is_gone(status):
    """A killed run recorded the step as running (its DDL may have finished) or ran: the absent object is expected."""
    m = expanded()
    sc.plan_steps(m, ADDRESSES, 'contract')   # the model now lacks what the contract dropped
    res = sc.plan_steps(m, ADDRESSES, 'contract', step_status={('contract', 0): status, ('contract', 1): 'ran', ('contract', 2): 'ran'})
    assert res.steps == []


@pytest.mark.parametrize('op,field', [
    ({'drop_columns': {'table': 'users', 'columns': ['email', 'emial']}}, 'contract[0].drop_columns.columns[1]'),
    ({'drop_index': {'table': 'users', 'name': 'users_nope'}}, 'contract[0].drop_index.name'),
    ({'drop_table': {'table': 'userz'}}, 'contract[0].drop_table.table'),
])
def test_contract_of_something_that_never_existed_fails_naming_the_field(op, field):
    with pytest.raises(DatabaseError) as err:
        sc.plan_steps(users_only(), mig(contract=[op]), 'contract')
    assert str(err.value).startswith(field), str(err.value)


def test_contract_refused_while_the_sync_triggers_exist():
    m = expanded()
    m.triggers.append(dict(name='zdt_m2_s0_fwd_upd', table='users', statement='zdt_sync: BEGIN END'))
    m.triggers.append(dict(name='zdt_m7_s0_fwd_upd', table='users', statement='zdt_sync: BEGIN END'))
    with pytest.raises(DatabaseError) as err:
        sc.plan_steps(m, ADDRESSES, 'contract')
    assert 'sync triggers still exist (zdt_m2_s0_fwd_upd)' in str(err.value)


def test_drop_index_needed_by_fk_is_refused():
    m = parse_migration({'id': 2, 'description': 'x', 'contract': [{'drop_index': {'table': 'addresses', 'name': 'addresses_user_id'}}]})
    with pytest.raises(DatabaseError) as err:
        sc.plan_steps(expanded(), m, 'contract')
    assert 'needed by foreign key addresses_user_fk' in str(err.value)


def test_drop_indexed_column_uses_inplace():
    model = users_only()
    model.tables['users'].indexes['users_email'] = dict(name='users_email', columns=['email'], unique=False)
    m = mig(contract=[{'drop_columns': {'table': 'users', 'columns': ['email']}}])
    res = sc.plan_steps(model, m, 'contract')
    assert res.steps[0].statement == 'ALTER TABLE `users` DROP COLUMN `email`, ALGORITHM=INPLACE, LOCK=NONE'
    assert 'users_email' not in model.tables['users'].indexes


def test_mysql_57_style_server_gets_inplace_drop_column():
    model = users_only(flavor='mysql', version=(8, 0, 20))
    m = mig(contract=[{'drop_columns': {'table': 'users', 'columns': ['email']}}])
    assert sc.plan_steps(model, m, 'contract').steps[0].statement.endswith('ALGORITHM=INPLACE, LOCK=NONE')


def test_drop_columns_refused_while_a_trigger_uses_them():
    model = expanded()
    model.triggers = [dict(name='zdt_s0_users_au', table='users',
                           statement='BEGIN UPDATE addresses SET address_line_1 = NEW.address_line_1 WHERE user_id = NEW.id; END')]
    with pytest.raises(DatabaseError) as err:
        sc.plan_steps(model, ADDRESSES, 'contract')
    assert 'contract[0]' in str(err.value) and 'zdt_s0_users_au' in str(err.value) and 'state=absent' in str(err.value)


def test_unrelated_trigger_does_not_block():
    model = expanded()
    model.triggers = [dict(name='audit', table='users', statement='BEGIN INSERT INTO audit_log(user_ident) VALUES (NEW.id); END')]
    assert len(sc.plan_steps(model, ADDRESSES, 'contract').steps) == 3


def test_drop_table_and_inbound_fk():
    m = mig(contract=[{'drop_table': {'table': 'users'}}])
    model = expanded()
    with pytest.raises(DatabaseError) as err:
        sc.plan_steps(model, m, 'contract')
    assert 'addresses_user_fk' in str(err.value)
    m2 = mig(contract=[{'drop_table': {'table': 'addresses'}}])
    assert [s.statement for s in sc.plan_steps(expanded(), m2, 'contract').steps] == ['DROP TABLE `addresses`']


def test_rollback_reverses_only_what_expand_made():
    m = mig(expand=[
        {'create_table': {'table': 'tags', 'columns': [{'name': 'id', 'type': 'INT', 'nullable': False}], 'primary_key': ['id']}},
        {'add_column': {'table': 'users', 'column': {'name': 'phone', 'type': 'VARCHAR(20)'}}},
        {'create_index': {'table': 'users', 'name': 'users_phone', 'columns': ['phone']}},
        {'create_index': {'table': 'tags', 'name': 'tags_id', 'columns': ['id']}},
        {'sql': {'up': 'INSERT INTO tags VALUES (1)', 'down': 'DELETE FROM tags WHERE id = 1'}},
    ])
    model = users_only()
    sc.plan_steps(model, m, 'expand')
    status = dict((('expand', i), 'ran') for i in range(5))
    res = sc.plan_steps(model, m, 'rollback', status)
    assert [s.statement for s in res.steps] == [
        'DELETE FROM tags WHERE id = 1',
        'ALTER TABLE `users` DROP INDEX `users_phone`, ALGORITHM=INPLACE, LOCK=NONE',
        'ALTER TABLE `users` DROP COLUMN `phone`, ALGORITHM=INSTANT',   # its index is gone by then
        'DROP TABLE `tags`']
    assert [s.op.field for s in res.skipped] == ['expand[3]']   # its table is dropped anyway


def test_rollback_never_drops_a_table_that_was_already_there():
    model = expanded()
    res = sc.plan_steps(model, ADDRESSES, 'rollback', {('expand', 0): 'present'})
    assert res.steps == [] and 'not made by this migration' in res.skipped[0].reason
    res = sc.plan_steps(expanded(), ADDRESSES, 'rollback', {('expand', 0): 'running'})
    assert [s.statement for s in res.steps] == ['DROP TABLE `addresses`']


def test_rollback_refused_while_triggers_reference_the_table():
    model = expanded()
    model.triggers = [dict(name='zdt_s0_users_ai', table='users', statement='BEGIN INSERT INTO `addresses` (user_id) VALUES (NEW.id); END')]
    with pytest.raises(DatabaseError) as err:
        sc.plan_steps(model, ADDRESSES, 'rollback', {('expand', 0): 'ran'})
    assert 'cannot roll back' in str(err.value) and 'zdt_s0_users_ai' in str(err.value)


def test_sql_steps_are_tracked():
    m = mig(expand=[{'sql': {'up': 'UPDATE users SET name = name', 'down': 'SELECT 1'}}])
    assert len(sc.plan_steps(users_only(), m, 'expand').steps) == 1
    assert sc.plan_steps(users_only(), m, 'expand', {('expand', 0): 'ran'}).steps == []
    assert sc.plan_steps(users_only(), m, 'expand', changelog_done=True).steps == []


def test_drift():
    sc.check_drift(ADDRESSES, {'expand': {'checksum': ADDRESSES.checksum, 'status': 'done'}})
    with pytest.raises(DriftError) as err:
        sc.check_drift(ADDRESSES, {'expand': {'checksum': '0' * 64, 'status': 'done'}})
    assert 'migration 2' in str(err.value)


def test_backoff_grows_and_is_capped():
    delays = [sc.backoff_delay(a, rand=lambda: 1.0) for a in range(10)]
    assert delays[0] == pytest.approx(0.1) and delays[3] == pytest.approx(0.8) and max(delays) == 5.0
    assert sc.backoff_delay(2, rand=lambda: 0.0) == pytest.approx(0.2)


class FakeError(Exception):
    pass


class FakeCursor(object):
    def __init__(self, conn):
        self.conn = conn
        self.rows = ()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def execute(self, sql, args=None):
        self.conn.log.append(sql if args is None else (sql, args))
        outcome = self.conn.script.pop(0) if self.conn.script and not sql.startswith(('SET ', 'SELECT')) else None
        if isinstance(outcome, Exception):
            raise outcome
        self.rows = ()

    def fetchall(self):
        return self.rows


class FakeConn(object):
    def __init__(self, script):
        self.script = list(script)
        self.log = []

    def cursor(self):
        return FakeCursor(self)


def step_for(statement, fallback=None):
    m = mig(expand=[{'add_column': {'table': 'users', 'column': {'name': 'phone', 'type': 'INT'}}}])
    return sc.Step('expand', 0, m.expand[0], statement, fallback, ('users',), 'add_column')


def test_run_ddl_retries_lock_waits_then_succeeds():
    conn = FakeConn([FakeError(1205, 'Lock wait timeout exceeded'), FakeError(1205, 'Lock wait timeout exceeded'), None])
    sleeps = []
    assert sc.run_ddl(conn, step_for('ALTER X'), 2, 5, sleep=sleeps.append) == 'ALTER X'
    assert conn.log[0] == ('SET SESSION lock_wait_timeout = %s', (2,))
    assert conn.log.count('ALTER X') == 3 and len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2


def test_run_ddl_gives_up_naming_the_op():
    conn = FakeConn([FakeError(1205, 'Lock wait timeout exceeded')] * 4)
    with pytest.raises(DatabaseError) as err:
        sc.run_ddl(conn, step_for('ALTER X'), 1, 3, sleep=lambda s: None)
    assert 'expand[0] add_column users.phone' in str(err.value) and 'gave up after 4 attempts' in str(err.value)
    assert conn.log.count('ALTER X') == 4


def test_run_ddl_falls_back_from_instant_but_never_copies():
    conn = FakeConn([FakeError(1846, 'ALGORITHM=INSTANT is not supported'), None])
    assert sc.run_ddl(conn, step_for('ALTER I', 'ALTER P'), sleep=lambda s: None) == 'ALTER P'
    conn = FakeConn([FakeError(1846, 'ALGORITHM=INSTANT is not supported'), FakeError(1846, 'ALGORITHM=INPLACE is not supported. Try COPY')])
    with pytest.raises(DatabaseError) as err:
        sc.run_ddl(conn, step_for('ALTER I', 'ALTER P'), sleep=lambda s: None)
    assert 'cannot make this change online' in str(err.value) and 'expand[0] add_column' in str(err.value)
    assert not any('COPY' in str(x) for x in conn.log if isinstance(x, str) and x.startswith('ALTER'))


def test_run_ddl_other_errors_are_not_retried():
    conn = FakeConn([FakeError(1064, 'syntax error')])
    with pytest.raises(DatabaseError) as err:
        sc.run_ddl(conn, step_for('ALTER X'), sleep=lambda s: pytest.fail('must not sleep'))
    assert 'error 1064' in str(err.value)


def test_lock_name_is_bounded():
    assert sc.lock_name('app') == 'zdt_schema.app'
    assert len(sc.lock_name('x' * 64)) <= 64


def test_changelog_ddl_quotes_name():
    assert sc.changelog_ddl('changelog').startswith('CREATE TABLE IF NOT EXISTS `changelog` (change_number BIGINT NOT NULL')


# ---- mysql_connection (no server): option translation and error messages --------------------------------

from ansible_collections.zdt.bluegreen.plugins.module_utils import mysql_connection as mc  # noqa: E402
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ConnectionFailed  # noqa: E402


class FakeDriverError(Exception):
    pass


class FakeDriver(object):
    class err(object):  # noqa: N801 - mimics pymysql.err
        MySQLError = FakeDriverError

    def __init__(self, exc):
        self.exc = exc
        self.kwargs = None

    def connect(self, **kwargs):
        self.kwargs = kwargs
        raise self.exc


PARAMS = dict(login_host='db.example', login_port=3307, login_user='deploy', login_password='S3cr3t!pw', login_unix_socket=None,
              config_file='/nonexistent/.my.cnf', connect_timeout=7, ca_cert=None, client_cert=None, client_key=None,
              check_hostname=None, database='app')


def test_connection_kwargs():
    kw = mc.connection_kwargs(PARAMS)
    assert kw['host'] == 'db.example' and kw['port'] == 3307 and kw['user'] == 'deploy' and kw['database'] == 'app'
    assert kw['connect_timeout'] == 7 and kw['charset'] == 'utf8mb4' and 'read_default_file' not in kw
    kw = mc.connection_kwargs(dict(PARAMS, login_unix_socket='/run/m.sock', ca_cert='/ca.pem', check_hostname=True))
    assert kw['unix_socket'] == '/run/m.sock' and 'host' not in kw and kw['ssl_ca'] == '/ca.pem' and kw['ssl_verify_identity'] is True


def test_config_file_used_only_when_present(tmp_path):
    cnf = tmp_path / 'my.cnf'
    cnf.write_text('[client]\nuser=x\n')
    assert mc.connection_kwargs(dict(PARAMS, config_file=str(cnf)))['read_default_file'] == str(cnf)


@pytest.mark.parametrize('code, text, expect', [
    (1045, "Access denied for user 'deploy'@'10.0.0.1' (using password: YES)", 'access denied for user deploy on db.example:3307'),
    (1049, "Unknown database 'app'", 'unknown database app on db.example:3307'),
    (2003, "Can't connect to MySQL server on 'db.example' ([Errno 111] Connection refused)", 'cannot reach the MySQL server at db.example:3307'),
    (1044, "Access denied for user 'deploy'@'%' to database 'app'", 'may not use database app'),
    (2003, 'weird driver text echoing S3cr3t!pw', 'cannot reach'),
])
def test_connect_errors_are_clear_and_never_contain_the_password(code, text, expect):
    with pytest.raises(ConnectionFailed) as err:
        mc.connect(PARAMS, driver=FakeDriver(FakeDriverError(code, text)))
    assert expect in str(err.value)
    assert 'S3cr3t!pw' not in str(err.value)


def test_server_version_parsing():
    class C(object):
        def __init__(self, v):
            self.v = v

        def cursor(self):
            outer = self

            class Cur(FakeCursor):
                def fetchall(self):
                    return ((outer.v,),)
            return Cur(FakeConn([]))
    assert mc.server_version(C('10.11.19-MariaDB-0+deb12u1'))[:2] == ('mariadb', (10, 11, 19))
    assert mc.server_version(C('8.0.36'))[:2] == ('mysql', (8, 0, 36))
