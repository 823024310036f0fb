# -*- coding: utf-8 -*-
"""alter_column: parsing, the rules only the whole file shows, the expression text checks and the trigger SQL."""
import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import NO_DEFAULT, parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_model import SchemaModel, TableModel
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_plan import live_default, plan_steps
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_expressions import expression_problem, referenced_columns, row_expression
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_plan import MappedPair, SyncPlan


def migration(*ops, **extra):
    data = {'id': 7, 'description': 'change customers', 'expand': list(ops)}
    data.update(extra)
    return data


def alter(**args):
    base = {'table': 'customers', 'column': 'nick'}
    base.update(args)
    return {'alter_column': base}


def error(data):
    with pytest.raises(SpecError) as err:
        parse_migration(data)
    return err.value


def test_rename_derives_a_same_table_sync_entry_and_a_contract_drop():
    m = parse_migration(migration(alter(rename_to='handle', type='VARCHAR(60)', up='LOWER(TRIM(nick))', down='handle')))
    op = m.expand[0]
    assert op.kind == 'alter_column' and op.args['rename_to'] == 'handle' and op.args['type'].sql() == 'VARCHAR(60)'
    assert op.args['default'] is NO_DEFAULT and op.args['nullable'] is None
    (entry,) = m.sync
    assert (entry.kind, entry.direction, entry.from_key, entry.origin) == ('same', 'both', None, 'expand[0].alter_column')
    assert entry.field == 'expand[0].alter_column' and entry.column_field('to', 0) == 'expand[0].alter_column.rename_to'
    assert entry.mappings[0].up == 'LOWER(TRIM(nick))' and entry.mappings[0].writes_back
    (drop,) = m.contract
    assert (drop.kind, drop.args['columns'], drop.field) == ('drop_columns', ('nick',), 'expand[0].alter_column')


def test_derived_entries_come_after_the_sync_list_and_an_explicit_drop_wins():
    sync = [{'from': {'table': 'users', 'key': 'id', 'columns': ['a']}, 'to': {'table': 'addr', 'key': 'user_id', 'columns': ['a']}}]
    m = parse_migration(migration(alter(rename_to='handle'), sync=sync, contract=[{'drop_columns': {'table': 'customers', 'columns': ['nick']}}]))
    assert [s.index for s in m.sync] == [0, 1] and m.sync[1].origin
    assert [op.field for op in m.contract] == ['contract[0]']


def test_split_needs_down_on_exactly_one_op():
    first = alter(column='full_name', rename_to='first_name', up="SUBSTRING_INDEX(full_name, ' ', 1)", down="CONCAT_WS(' ', first_name, last_name)")
    last = alter(column='full_name', rename_to='last_name', up="SUBSTRING_INDEX(full_name, ' ', -1)")
    m = parse_migration(migration(first, last))
    (entry,) = m.sync
    assert entry.from_columns == ('full_name', 'full_name') and entry.to_columns == ('first_name', 'last_name')
    assert [mp.writes_back for mp in entry.mappings] == [True, False]
    last_down = alter(column='full_name', rename_to='last_name', up='x', down='last_name')
    assert error(migration(first, last_down)).field == 'expand[1].alter_column.down'
    no_down = alter(column='full_name', rename_to='first_name', up='x')
    assert error(migration(no_down, last)).field == 'expand[0].alter_column.down'


@pytest.mark.parametrize('args,field', [
    (dict(rename_to='nick'), 'expand[0].alter_column.rename_to'),
    (dict(rename_to='bad name'), 'expand[0].alter_column.rename_to'),
    (dict(column='a`b', rename_to='x'), 'expand[0].alter_column.column'),
    (dict(rename_to='h', type='VARCHAR'), 'expand[0].alter_column.type'),
    (dict(rename_to='h', nullable='no'), 'expand[0].alter_column.nullable'),
    (dict(rename_to='h', type='INT', default='abc'), 'expand[0].alter_column.default'),
    (dict(rename_to='h', type='INT', charset='utf8mb4'), 'expand[0].alter_column.charset'),
    (dict(rename_to='h', up=''), 'expand[0].alter_column.up'),
    (dict(rename_to='h', up='1; DROP TABLE users'), 'expand[0].alter_column.up'),
    (dict(rename_to='h', down='handle -- x'), 'expand[0].alter_column.down'),
    (dict(rename_to='h', up='LOWER(nick'), 'expand[0].alter_column.up'),
    (dict(rename_to='h', up=5), 'expand[0].alter_column.up'),
    (dict(rename_to='h', type='BIGINT', up='nick + 1'), 'expand[0].alter_column.down'),
    (dict(up='LOWER(nick)'), 'expand[0].alter_column.up'),
    (dict(), 'expand[0].alter_column'),
    (dict(rename_to='h', colour='red'), 'expand[0].alter_column.colour'),
])
def test_bad_input_names_the_field(args, field):
    assert error(migration(alter(**args))).field == field


def test_a_new_column_cannot_be_named_twice_or_changed_again():
    add = {'add_column': {'table': 'customers', 'column': {'name': 'handle', 'type': 'INT'}}}
    assert error(migration(add, alter(rename_to='handle'))).field == 'expand[1].alter_column.rename_to'
    assert error(migration(alter(rename_to='handle'), alter(column='handle', rename_to='h2'))).field == 'expand[1].alter_column.column'
    assert error(migration(alter(rename_to='handle'), alter(type='VARCHAR(40)'))).field == 'expand[1].alter_column.column'


@pytest.mark.parametrize('text', ["LOWER(TRIM(nick))", "CONCAT_WS(' ', a, b)", "IF(x = 'a;b', 1, 2)", "'it''s -- fine'", "`odd``name` + 1"])
def test_expressions_accepted(text):
    assert expression_problem(text) is None


@pytest.mark.parametrize('text', ['a; b', 'a # b', 'a /* b */', 'a -- b', "'open", '(a', 'a)', 'a\\b', 'x\x00'])
def test_expressions_refused(text):
    assert expression_problem(text)


def test_row_expression_builds_the_trigger_row_of_the_columns_it_names():
    assert referenced_columns('LOWER(TRIM(Nick))', ['id', 'nick', 'nickname']) == ['nick']
    assert row_expression('LOWER(nick)', ['id', 'nick']) == '(LOWER(nick))'
    assert row_expression('LOWER(nick)', ['id', 'nick'], 'NEW') == '(SELECT (LOWER(nick)) FROM (SELECT NEW.`nick` AS `nick`) AS zdt_row)'
    assert row_expression('42', ['id', 'nick'], 'NEW') == '(42)'


def test_live_default_reads_information_schema_text():
    assert live_default({'default': None}) is NO_DEFAULT
    assert live_default({'default': 'NULL'}) is None
    assert live_default({'default': "'it''s'"}) == "it's"
    assert live_default({'default': '5'}) == 5
    assert live_default({'default': 'current_timestamp()'}) == 'CURRENT_TIMESTAMP'
    with pytest.raises(ValueError):
        live_default({'default': 'uuid()'})


def _model(coldefs):
    names = [c['name'] for c in coldefs]
    t = TableModel('customers', names, {'PRIMARY': dict(columns=['id'], unique=True)}, column_defs=dict((c['name'], c) for c in coldefs))
    return SchemaModel('app', {'customers': t})


def _col(name, column_type, nullable=True, default='NULL', charset=None, collation=None):
    return dict(name=name, type=column_type.split('(')[0], column_type=column_type, nullable=nullable, default=default, extra='',
                generated=False, charset=charset, collation=collation, comment='')


ID = _col('id', 'int(11)', nullable=False, default=None)


def test_plan_rename_adds_the_new_column_with_the_old_ones_attributes():
    model = _model([ID, _col('nick', 'varchar(20)', nullable=False, default="''", charset='utf8mb4', collation='utf8mb4_bin')])
    steps = plan_steps(model, parse_migration(migration(alter(rename_to='handle', type='VARCHAR(60)'))), 'expand').steps
    assert [s.statement for s in steps] == [
        "ALTER TABLE `customers` ADD COLUMN `handle` VARCHAR(60) CHARACTER SET `utf8mb4` COLLATE `utf8mb4_bin` NOT NULL DEFAULT '', "
        'ALGORITHM=INSTANT']
    # run again: the column is there
    assert plan_steps(model, parse_migration(migration(alter(rename_to='handle'))), 'expand').steps == []


@pytest.mark.parametrize('args,ok', [
    (dict(type='VARCHAR(40)'), True),
    (dict(nullable=True), True),
    (dict(type='VARCHAR(10)'), False),
    (dict(type='INT'), False),
])
def test_plan_in_place_only_widens(args, ok):
    model = _model([ID, _col('nick', 'varchar(20)', nullable=False, default="''", charset='utf8mb4', collation='utf8mb4_bin')])
    mig = parse_migration(migration(alter(**args)))
    if ok:
        (step,) = plan_steps(model, mig, 'expand').steps
        assert 'MODIFY COLUMN `nick`' in step.statement and step.statement.endswith('ALGORITHM=INSTANT')
        assert step.fallback.endswith('ALGORITHM=INPLACE, LOCK=NONE')
    else:
        with pytest.raises(Exception) as err:
            plan_steps(model, mig, 'expand')
        assert 'expand[0]' in str(err.value) and 'rename_to' in str(err.value)


def test_plan_refuses_a_primary_key_column_and_rollback_drops_the_new_column():
    model = _model([ID, _col('nick', 'varchar(20)')])
    with pytest.raises(Exception) as err:
        plan_steps(model, parse_migration(migration(alter(column='id', rename_to='id2'))), 'expand')
    assert 'primary key' in str(err.value)
    model = _model([ID, _col('nick', 'varchar(20)'), _col('handle', 'varchar(20)')])
    steps = plan_steps(model, parse_migration(migration(alter(rename_to='handle'))), 'rollback', {('expand', 0): 'ran'}).steps
    assert [s.statement for s in steps] == ['ALTER TABLE `customers` DROP COLUMN `handle`, ALGORITHM=INSTANT']


def _mapped_plan(mig):
    spec = mig.sync[0]._replace(from_key='id', to_key='id')
    pairs = [MappedPair(m, 'varchar', 'varchar', ['id', 'nick', 'full_name'], ['id', 'nick', 'full_name', 'handle', 'first_name', 'last_name'],
                        "''", 'NULL') for m in spec.mappings]
    return SyncPlan(mig.id, spec, ['varchar'] * len(pairs), ['varchar'] * len(pairs), 'int', mapped=pairs)


def test_mapped_triggers_apply_up_and_down_and_skip_the_backfill():
    plan = _mapped_plan(parse_migration(migration(alter(rename_to='handle', up='LOWER(nick)'))))
    trig = dict((t.name, t) for t in plan.triggers())
    assert sorted(trig) == ['zdt_m7_s0_same_ins', 'zdt_m7_s0_same_upd']
    upd = trig['zdt_m7_s0_same_upd'].body
    assert upd.startswith('zdt_sync: BEGIN') and 'IF @zdt_copy_m7_s0 IS NULL THEN' in upd
    assert 'SET NEW.`handle` = (SELECT (LOWER(nick)) FROM (SELECT NEW.`nick` AS `nick`) AS zdt_row);' in upd
    assert 'SET NEW.`nick` = NEW.`handle`;' in upd
    ins = trig['zdt_m7_s0_same_ins'].body
    # the old column goes through down only when the statement gave the new side and left the old one at its default
    assert "IF NOT ((NEW.`handle` IS NULL)) AND (CAST(CONVERT(NEW.`nick` USING utf8mb4) AS BINARY) <=> CAST(CONVERT('' USING utf8mb4) AS BINARY)) THEN" in ins
    assert plan.mapped_verified() == (
        '(((CAST(CONVERT(`handle` USING utf8mb4) AS BINARY) <=> CAST(CONVERT((LOWER(nick)) USING utf8mb4) AS BINARY))) OR '
        '(CAST(CONVERT(`nick` USING utf8mb4) AS BINARY) <=> CAST(CONVERT(`handle` USING utf8mb4) AS BINARY)))')
    assert plan.mapped_fill() == '`handle` = (LOWER(nick))'


def test_split_triggers_write_the_old_column_from_every_new_one():
    first = alter(column='full_name', rename_to='first_name', up="SUBSTRING_INDEX(full_name, ' ', 1)", down="CONCAT_WS(' ', first_name, last_name)")
    last = alter(column='full_name', rename_to='last_name', up="SUBSTRING_INDEX(full_name, ' ', -1)")
    plan = _mapped_plan(parse_migration(migration(first, last)))
    upd = dict((t.name, t) for t in plan.triggers())['zdt_m7_s0_same_upd'].body
    assert "ELSEIF NOT (CAST(NEW.`first_name` AS BINARY) <=> CAST(OLD.`first_name` AS BINARY)) OR " \
           "NOT (CAST(NEW.`last_name` AS BINARY) <=> CAST(OLD.`last_name` AS BINARY)) THEN" in upd
    assert ("SET NEW.`full_name` = (SELECT (CONCAT_WS(' ', first_name, last_name)) FROM (SELECT NEW.`first_name` AS `first_name`, "
            "NEW.`last_name` AS `last_name`) AS zdt_row);") in upd
    assert plan.mapped_fill().count(' = ') == 2


# ------------------------------------------------------------------------------------------ add_foreign_key

def add_fk(**args):
    base = {'table': 'orders', 'name': 'orders_customer_fk', 'columns': ['customer_id'],
            'references': {'table': 'customers', 'columns': ['id']}}
    base.update(args)
    return {'add_foreign_key': base}


@pytest.mark.parametrize('args,field', [
    (dict(name='bad name'), 'expand[0].add_foreign_key.name'),
    (dict(columns=[]), 'expand[0].add_foreign_key.columns'),
    (dict(references={'table': 'customers'}), 'expand[0].add_foreign_key.references.columns'),
    (dict(references={'table': 'customers', 'columns': ['id', 'x']}), 'expand[0].add_foreign_key.references.columns'),
    (dict(on_delete='EXPLODE'), 'expand[0].add_foreign_key.on_delete'),
    (dict(match='full'), 'expand[0].add_foreign_key.match'),
])
def test_add_foreign_key_bad_input_names_the_field(args, field):
    assert error(migration(add_fk(**args))).field == field


def test_add_foreign_key_twice_is_refused():
    assert error(migration(add_fk(), add_fk())).field == 'expand[1].add_foreign_key.name'


def _fk_model(customer_nullable=True):
    orders = TableModel('orders', ['id', 'customer_id'], {'PRIMARY': dict(columns=['id'], unique=True)},
                        column_defs={'customer_id': _col('customer_id', 'int(11)', nullable=customer_nullable)})
    customers = TableModel('customers', ['id', 'code'], {'PRIMARY': dict(columns=['id'], unique=True)})
    return SchemaModel('app', {'orders': orders, 'customers': customers})


def test_plan_add_foreign_key_online_then_rollback():
    model = _fk_model()
    mig = parse_migration(migration(add_fk(on_delete='SET NULL')))
    (step,) = plan_steps(model, mig, 'expand').steps
    assert step.statement == ('ALTER TABLE `orders` ADD CONSTRAINT `orders_customer_fk` FOREIGN KEY (`customer_id`) REFERENCES '
                              '`customers` (`id`) ON DELETE SET NULL, ALGORITHM=INPLACE, LOCK=NONE')
    assert step.action == 'add_foreign_key' and model.inbound_fks['customers'] == [('orders', 'orders_customer_fk', ['id'])]
    assert plan_steps(model, mig, 'expand').steps == []     # planned model: the key is there now
    (back,) = plan_steps(model, mig, 'rollback', {('expand', 0): 'ran'}).steps
    assert back.statement == 'ALTER TABLE `orders` DROP FOREIGN KEY `orders_customer_fk`, ALGORITHM=INSTANT'


@pytest.mark.parametrize('args,message', [
    (dict(columns=['nope']), 'column orders.nope does not exist'),
    (dict(references={'table': 'nobody', 'columns': ['id']}), 'referenced table nobody does not exist'),
    (dict(references={'table': 'customers', 'columns': ['code']}), 'not the leading columns of an index'),
])
def test_plan_add_foreign_key_refusals(args, message):
    with pytest.raises(Exception) as err:
        plan_steps(_fk_model(), parse_migration(migration(add_fk(**args))), 'expand')
    assert message in str(err.value) and 'expand[0]' in str(err.value)


def test_plan_add_foreign_key_set_null_needs_nullable_columns():
    with pytest.raises(Exception) as err:
        plan_steps(_fk_model(customer_nullable=False), parse_migration(migration(add_fk(on_delete='SET NULL'))), 'expand')
    assert 'SET NULL needs nullable columns' in str(err.value)


# ------------------------------------------------------------------------------------------ mapped cross-table pairs

def mapped_sync(columns, **entry):
    base = {'from': {'table': 'people', 'key': 'id'}, 'to': {'table': 'names', 'key': 'person_id'}, 'columns': columns}
    base.update(entry)
    return {'id': 8, 'description': 'split', 'sync': [base]}


SPLIT = [{'from': 'full_name', 'to': 'first_name', 'up': "SUBSTRING_INDEX(full_name, ' ', 1)", 'down': "CONCAT_WS(' ', first_name, last_name)"},
         {'from': 'full_name', 'to': 'last_name', 'up': "SUBSTRING_INDEX(full_name, ' ', -1)"}]


def test_mapped_pairs_parse_into_mappings():
    (entry,) = parse_migration(mapped_sync(SPLIT + [{'from': 'email', 'to': 'email_lc', 'up': 'LOWER(email)'}])).sync
    assert entry.kind == 'cross' and entry.from_columns == ('full_name', 'full_name', 'email')
    assert [m.writes_back for m in entry.mappings] == [True, False, True]
    assert entry.column_field('to', 1) == 'sync[0].columns[1].to'


@pytest.mark.parametrize('columns,entry,field', [
    ([], {}, 'sync[0].columns'),
    ([{'from': 'a'}], {}, 'sync[0].columns[0].to'),
    ([{'from': 'a', 'to': 'b', 'up': 'x;'}], {}, 'sync[0].columns[0].up'),
    ([{'from': 'a', 'to': 'b', 'down': 'b'}], {'direction': 'forward'}, 'sync[0].columns[0].down'),
    ([SPLIT[0], dict(SPLIT[1], down='last_name')], {}, 'sync[0].columns[1].down'),
    ([dict(SPLIT[0], down=None), SPLIT[1]], {}, 'sync[0].columns[0].down'),
    ([{'from': 'id', 'to': 'b'}], {}, 'sync[0].columns[0].from'),
    ([{'from': 'a', 'to': 'b'}, {'from': 'c', 'to': 'b'}], {}, 'sync[0].columns[1].to'),
    ([{'from': 'a', 'to': 'b'}], {'from': {'table': 'people', 'key': 'id', 'columns': ['a']}}, 'sync[0].from.columns'),
    ([{'from': 'a', 'to': 'b'}], {'to': {'table': 'people', 'key': 'id'}}, 'sync[0].columns'),
])
def test_mapped_pairs_bad_input_names_the_field(columns, entry, field):
    assert error(mapped_sync(columns, **entry)).field == field


def test_mapped_cross_triggers_apply_up_forward_and_down_backward():
    mig = parse_migration(mapped_sync(SPLIT))
    spec = mig.sync[0]
    pairs = [MappedPair(m, 'varchar', 'varchar', ['id', 'full_name'], ['id', 'person_id', 'first_name', 'last_name']) for m in spec.mappings]
    plan = SyncPlan(8, spec, ['varchar'] * 2, ['varchar'] * 2, 'int', target_autoinc='id', mapped=pairs)
    trig = dict((t.name, t.body) for t in plan.triggers())
    assert ("INSERT INTO `names` (`person_id`, `first_name`, `last_name`) VALUES (NEW.`id`, "
            "(SELECT (SUBSTRING_INDEX(full_name, ' ', 1)) FROM (SELECT NEW.`full_name` AS `full_name`) AS zdt_row), ") in trig['zdt_m8_s0_fwd_ins']
    assert 'IF NOT (NEW.`full_name` IS NULL) THEN' in trig['zdt_m8_s0_fwd_ins']
    # only the pair with down writes the old column back
    assert ("UPDATE `people` SET `full_name` = (SELECT (CONCAT_WS(' ', first_name, last_name)) FROM (SELECT NEW.`first_name` AS "
            "`first_name`, NEW.`last_name` AS `last_name`) AS zdt_row) WHERE `id` = NEW.`person_id`;") in trig['zdt_m8_s0_bwd_upd']
    assert 'UPDATE `people` SET `full_name` = NULL WHERE `id` = OLD.`person_id`;' in trig['zdt_m8_s0_bwd_del']
    assert plan.source_values(None) == ["(SUBSTRING_INDEX(full_name, ' ', 1))", "(SUBSTRING_INDEX(full_name, ' ', -1))"]
