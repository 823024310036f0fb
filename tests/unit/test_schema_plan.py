# -*- coding: utf-8 -*-
import os

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_model import SchemaModel, TableModel
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_plan import plan_steps

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), 'sample', 'migrations')
ADDRESSES = parse_migration(os.path.join(FIXTURES, '002_addresses.yml'))
USERS_COLS = ['id', 'name', 'email', 'address_line_1', 'address_line_2']


def users_only(**kw):
    users = TableModel('users', USERS_COLS, {'PRIMARY': {'columns': ['id'], 'unique': True}})
    return SchemaModel('app', {'users': users}, **kw)


def expanded():
    m = users_only()
    plan_steps(m, ADDRESSES, 'expand')
    return m


def test_expand_creates_table_with_fk():
    res = plan_steps(users_only(), ADDRESSES, 'expand')
    assert [s.statement for s in res.steps] == [
        'CREATE TABLE `addresses` (`id` INT NOT NULL AUTO_INCREMENT, `user_id` INT NOT NULL, `address_line_1` VARCHAR(100) NULL, '
        '`address_line_2` VARCHAR(100) NULL, PRIMARY KEY (`id`), UNIQUE KEY `addresses_user_id` (`user_id`), '
        'CONSTRAINT `addresses_user_fk` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`) ON DELETE CASCADE) ENGINE=InnoDB']
    assert res.steps[0].tables == ('addresses',) and res.skipped == []


def test_expand_is_idempotent_against_the_model():
    m = expanded()
    res = plan_steps(m, ADDRESSES, 'expand')
    assert res.steps == [] and [s.op.field for s in res.skipped] == ['expand[0]']


def test_expand_missing_referenced_table_fails_before_anything():
    with pytest.raises(DatabaseError) as err:
        plan_steps(SchemaModel('app', {}), ADDRESSES, 'expand')
    assert 'expand[0].create_table.foreign_keys[0].references.table' in str(err.value) and 'users' in str(err.value)


def test_existing_table_with_other_columns_is_not_guessed():
    m = users_only()
    m.tables['addresses'] = TableModel('addresses', ['id', 'user_id'])
    with pytest.raises(DatabaseError) as err:
        plan_steps(m, ADDRESSES, 'expand')
    assert 'address_line_1' in str(err.value)


def mig(expand=None, contract=None):
    return parse_migration({'id': 9, 'description': 'test', 'expand': expand or [], 'contract': contract or []})


def test_add_column_instant_with_inplace_fallback():
    m = mig(expand=[{'add_column': {'table': 'users', 'column': {'name': 'phone', 'type': 'VARCHAR(20)', 'default': 'n/a'}}}])
    res = plan_steps(users_only(), m, 'expand')
    step = res.steps[0]
    assert step.statement == "ALTER TABLE `users` ADD COLUMN `phone` VARCHAR(20) NULL DEFAULT 'n/a', ALGORITHM=INSTANT"
    assert step.fallback == "ALTER TABLE `users` ADD COLUMN `phone` VARCHAR(20) NULL DEFAULT 'n/a', ALGORITHM=INPLACE, LOCK=NONE"


def test_add_column_to_missing_table_and_existing_column():
    m = mig(expand=[{'add_column': {'table': 'nosuch', 'column': {'name': 'x', 'type': 'INT'}}}])
    with pytest.raises(DatabaseError) as err:
        plan_steps(users_only(), m, 'expand')
    assert 'expand[0].add_column.table' in str(err.value) and 'nosuch does not exist' in str(err.value)
    m = mig(expand=[{'add_column': {'table': 'users', 'column': {'name': 'EMAIL', 'type': 'INT'}}}])
    assert plan_steps(users_only(), m, 'expand').steps == []


def test_create_index_checks_columns_and_existing_definition():
    m = mig(expand=[{'create_index': {'table': 'users', 'name': 'users_email', 'columns': ['email'], 'unique': True}}])
    res = plan_steps(users_only(), m, 'expand')
    assert res.steps[0].statement == 'ALTER TABLE `users` ADD UNIQUE INDEX `users_email` (`email`), ALGORITHM=INPLACE, LOCK=NONE'
    bad = mig(expand=[{'create_index': {'table': 'users', 'name': 'i', 'columns': ['nope']}}])
    with pytest.raises(DatabaseError) as err:
        plan_steps(users_only(), bad, 'expand')
    assert 'expand[0].create_index.columns[0]' in str(err.value)
    model = users_only()
    model.tables['users'].indexes['users_email'] = dict(name='users_email', columns=['name'], unique=False)
    with pytest.raises(DatabaseError) as err:
        plan_steps(model, m, 'expand')
    assert 'different definition' in str(err.value)


def test_contract_of_design_example():
    res = plan_steps(expanded(), ADDRESSES, 'contract')
    assert [s.statement for s in res.steps] == [
        'ALTER TABLE `users` DROP COLUMN `address_line_1`, DROP COLUMN `address_line_2`, ALGORITHM=INSTANT',
        'ALTER TABLE `addresses` ADD INDEX `addresses_user` (`user_id`), ALGORITHM=INPLACE, LOCK=NONE',
        'ALTER TABLE `addresses` DROP INDEX `addresses_user_id`, ALGORITHM=INPLACE, LOCK=NONE']
    assert res.steps[0].fallback.endswith('ALGORITHM=INPLACE, LOCK=NONE')


def test_contract_twice_plans_nothing():
    m = expanded()
    first = plan_steps(m, ADDRESSES, 'contract')
    ran = dict((('contract', s.index), 'ran') for s in first.steps)
    res = plan_steps(m, ADDRESSES, 'contract', step_status=ran)
    assert res.steps == [] and len(res.skipped) == 3


@pytest.mark.parametrize('status', ['running', 'ran'])
def test_contract_resumed_after_a_kill_skips_what_is_gone(status):
    """A killed run recorded the step as running (its DDL may have finished) or ran: the absent object is expected."""
    m = expanded()
    plan_steps(m, ADDRESSES, 'contract')   # the model now lacks what the contract dropped
    res = plan_steps(m, ADDRESSES, 'contract', step_status={('contract', 0): status, ('contract', 1): 'ran', ('contract', 2): 'ran'})
    assert res.steps == []


@pytest.mark.parametrize('op,field', [
    ({'drop_columns': {'table': 'users', 'columns': ['email', 'emial']}}, 'contract[0].drop_columns.columns[1]'),
    ({'drop_index': {'table': 'users', 'name': 'users_nope'}}, 'contract[0].drop_index.name'),
    ({'drop_table': {'table': 'userz'}}, 'contract[0].drop_table.table'),
])
def test_contract_of_something_that_never_existed_fails_naming_the_field(op, field):
    with pytest.raises(DatabaseError) as err:
        plan_steps(users_only(), mig(contract=[op]), 'contract')
    assert str(err.value).startswith(field), str(err.value)


def test_contract_refused_while_the_sync_triggers_exist():
    m = expanded()
    m.triggers.append(dict(name='zdt_m2_s0_fwd_upd', table='users', statement='zdt_sync: BEGIN END'))
    m.triggers.append(dict(name='zdt_m7_s0_fwd_upd', table='users', statement='zdt_sync: BEGIN END'))
    with pytest.raises(DatabaseError) as err:
        plan_steps(m, ADDRESSES, 'contract')
    assert 'sync triggers still exist (zdt_m2_s0_fwd_upd)' in str(err.value)


def test_drop_index_needed_by_fk_is_refused():
    m = parse_migration({'id': 2, 'description': 'x', 'contract': [{'drop_index': {'table': 'addresses', 'name': 'addresses_user_id'}}]})
    with pytest.raises(DatabaseError) as err:
        plan_steps(expanded(), m, 'contract')
    assert 'needed by foreign key addresses_user_fk' in str(err.value)


def test_drop_indexed_column_uses_inplace():
    model = users_only()
    model.tables['users'].indexes['users_email'] = dict(name='users_email', columns=['email'], unique=False)
    m = mig(contract=[{'drop_columns': {'table': 'users', 'columns': ['email']}}])
    res = plan_steps(model, m, 'contract')
    assert res.steps[0].statement == 'ALTER TABLE `users` DROP COLUMN `email`, ALGORITHM=INPLACE, LOCK=NONE'
    assert 'users_email' not in model.tables['users'].indexes


def test_mysql_57_style_server_gets_inplace_drop_column():
    model = users_only(flavor='mysql', version=(8, 0, 20))
    m = mig(contract=[{'drop_columns': {'table': 'users', 'columns': ['email']}}])
    assert plan_steps(model, m, 'contract').steps[0].statement.endswith('ALGORITHM=INPLACE, LOCK=NONE')


def test_drop_columns_refused_while_a_trigger_uses_them():
    model = expanded()
    model.triggers = [dict(name='zdt_s0_users_au', table='users',
                           statement='BEGIN UPDATE addresses SET address_line_1 = NEW.address_line_1 WHERE user_id = NEW.id; END')]
    with pytest.raises(DatabaseError) as err:
        plan_steps(model, ADDRESSES, 'contract')
    assert 'contract[0]' in str(err.value) and 'zdt_s0_users_au' in str(err.value) and 'state=absent' in str(err.value)


def test_unrelated_trigger_does_not_block():
    model = expanded()
    model.triggers = [dict(name='audit', table='users', statement='BEGIN INSERT INTO audit_log(user_ident) VALUES (NEW.id); END')]
    assert len(plan_steps(model, ADDRESSES, 'contract').steps) == 3


def test_drop_table_and_inbound_fk():
    m = mig(contract=[{'drop_table': {'table': 'users'}}])
    model = expanded()
    with pytest.raises(DatabaseError) as err:
        plan_steps(model, m, 'contract')
    assert 'addresses_user_fk' in str(err.value)
    m2 = mig(contract=[{'drop_table': {'table': 'addresses'}}])
    assert [s.statement for s in plan_steps(expanded(), m2, 'contract').steps] == ['DROP TABLE `addresses`']


def test_rollback_reverses_only_what_expand_made():
    m = mig(expand=[
        {'create_table': {'table': 'tags', 'columns': [{'name': 'id', 'type': 'INT', 'nullable': False}], 'primary_key': ['id']}},
        {'add_column': {'table': 'users', 'column': {'name': 'phone', 'type': 'VARCHAR(20)'}}},
        {'create_index': {'table': 'users', 'name': 'users_phone', 'columns': ['phone']}},
        {'create_index': {'table': 'tags', 'name': 'tags_id', 'columns': ['id']}},
        {'sql': {'up': 'INSERT INTO tags VALUES (1)', 'down': 'DELETE FROM tags WHERE id = 1'}},
    ])
    model = users_only()
    plan_steps(model, m, 'expand')
    status = dict((('expand', i), 'ran') for i in range(5))
    res = plan_steps(model, m, 'rollback', status)
    assert [s.statement for s in res.steps] == [
        'DELETE FROM tags WHERE id = 1',
        'ALTER TABLE `users` DROP INDEX `users_phone`, ALGORITHM=INPLACE, LOCK=NONE',
        'ALTER TABLE `users` DROP COLUMN `phone`, ALGORITHM=INSTANT',   # its index is gone by then
        'DROP TABLE `tags`']
    assert [s.op.field for s in res.skipped] == ['expand[3]']   # its table is dropped anyway


def test_rollback_never_drops_a_table_that_was_already_there():
    model = expanded()
    res = plan_steps(model, ADDRESSES, 'rollback', {('expand', 0): 'present'})
    assert res.steps == [] and 'not made by this migration' in res.skipped[0].reason
    res = plan_steps(expanded(), ADDRESSES, 'rollback', {('expand', 0): 'running'})
    assert [s.statement for s in res.steps] == ['DROP TABLE `addresses`']


def test_rollback_refused_while_triggers_reference_the_table():
    model = expanded()
    model.triggers = [dict(name='zdt_s0_users_ai', table='users', statement='BEGIN INSERT INTO `addresses` (user_id) VALUES (NEW.id); END')]
    with pytest.raises(DatabaseError) as err:
        plan_steps(model, ADDRESSES, 'rollback', {('expand', 0): 'ran'})
    assert 'cannot roll back' in str(err.value) and 'zdt_s0_users_ai' in str(err.value)


def test_sql_steps_are_tracked():
    m = mig(expand=[{'sql': {'up': 'UPDATE users SET name = name', 'down': 'SELECT 1'}}])
    assert len(plan_steps(users_only(), m, 'expand').steps) == 1
    assert plan_steps(users_only(), m, 'expand', {('expand', 0): 'ran'}).steps == []
    assert plan_steps(users_only(), m, 'expand', changelog_done=True).steps == []
