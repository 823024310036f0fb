# -*- coding: utf-8 -*-
import copy
import os

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import IdentifierError, SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import (
    CURRENT_TIMESTAMP, NO_DEFAULT, Migration, SyncSpec, parse_column, parse_migration)

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), 'sample', 'migrations')
ADDRESSES = os.path.join(FIXTURES, '002_addresses.yml')


def base():
    return {
        'id': 2,
        'description': 'Move addresses',
        'expand': [{'create_table': {
            'table': 'addresses',
            'columns': [{'name': 'id', 'type': 'INT', 'nullable': False, 'auto_increment': True},
                        {'name': 'user_id', 'type': 'INT', 'nullable': False},
                        {'name': 'address_line_1', 'type': 'VARCHAR(100)'}],
            'primary_key': ['id'],
            'indexes': [{'name': 'addresses_user_id', 'columns': ['user_id'], 'unique': True}],
            'foreign_keys': [{'name': 'fk', 'columns': ['user_id'], 'references': {'table': 'users', 'columns': ['id']},
                              'on_delete': 'CASCADE'}]}}],
        'sync': [{'from': {'table': 'users', 'key': 'id', 'columns': ['address_line_1']},
                  'to': {'table': 'addresses', 'key': 'user_id', 'columns': ['address_line_1']}}],
        'contract': [{'drop_columns': {'table': 'users', 'columns': ['address_line_1']}}],
    }


def spec_error(data):
    with pytest.raises(SpecError) as err:
        parse_migration(data)
    return err.value


def test_design_example_parses():
    m = parse_migration(ADDRESSES)
    assert isinstance(m, Migration)
    assert m.id == 2 and m.description.startswith('Move addresses')
    assert [op.kind for op in m.expand] == ['create_table']
    assert [op.kind for op in m.contract] == ['drop_columns', 'create_index', 'drop_index']
    assert [op.field for op in m.contract] == ['contract[0]', 'contract[1]', 'contract[2]']
    ct = m.expand[0].args
    assert [c.name for c in ct['columns']] == ['id', 'user_id', 'address_line_1', 'address_line_2']
    assert ct['columns'][0].auto_increment and not ct['columns'][0].nullable
    assert ct['columns'][2].nullable and ct['columns'][2].default is NO_DEFAULT
    assert ct['primary_key'] == ('id',)
    assert ct['foreign_keys'][0].on_delete == 'CASCADE' and ct['foreign_keys'][0].ref_table == 'users'
    s = m.sync[0]
    assert isinstance(s, SyncSpec)
    assert (s.index, s.from_table, s.from_key, s.from_columns) == (0, 'users', 'id', ('address_line_1', 'address_line_2'))
    assert (s.to_table, s.to_key, s.to_columns, s.direction, s.kind) == (
        'addresses', 'user_id', ('address_line_1', 'address_line_2'), 'both', 'cross')
    assert len(m.checksum) == 64 and m.source == ADDRESSES


def test_users_fixture_parses():
    m = parse_migration(os.path.join(FIXTURES, '001_users.yml'))
    assert m.id == 1 and [c.name for c in m.expand[0].args['columns']][-2:] == ['address_line_1', 'address_line_2']


def test_checksum_is_canonical_and_detects_edits():
    a = parse_migration(base())
    reordered = dict(reversed(list(base().items())))
    assert parse_migration(reordered).checksum == a.checksum
    edited = base()
    edited['expand'][0]['create_table']['columns'][2]['type'] = 'VARCHAR(101)'
    assert parse_migration(edited).checksum != a.checksum


def test_yaml_text_and_comments_do_not_change_checksum(tmp_path):
    with open(ADDRESSES) as f:
        text = f.read()
    p = tmp_path / 'm.yml'
    p.write_text('# a new comment\n' + text)
    assert parse_migration(str(p)).checksum == parse_migration(ADDRESSES).checksum
    assert parse_migration(text).checksum == parse_migration(ADDRESSES).checksum


def test_missing_file_and_bad_yaml(tmp_path):
    assert spec_error(str(tmp_path / 'nope.yml')).field == 'migration'
    p = tmp_path / 'bad.yml'
    p.write_text('id: [1\n')
    assert 'invalid YAML' in str(spec_error(str(p)))


def test_direction_defaults_to_both():
    d = base()
    assert parse_migration(d).sync[0].direction == 'both'
    d['sync'][0]['direction'] = 'forward'
    assert parse_migration(d).sync[0].direction == 'forward'


@pytest.mark.parametrize('mutate, field', [
    (lambda d: d.pop('id'), 'id'),
    (lambda d: d.update(id=0), 'id'),
    (lambda d: d.update(id='2'), 'id'),
    (lambda d: d.update(id=True), 'id'),
    (lambda d: d.pop('description'), 'description'),
    (lambda d: d.update(extra=1), 'extra'),
    (lambda d: d.update(expand={'x': 1}), 'expand'),
    (lambda d: d['expand'].append({'drop_table': {'table': 'x'}}), 'expand[1].drop_table'),
    (lambda d: d['expand'].append({'create_index': {'table': 'x'}, 'add_column': {}}), 'expand[1]'),
    (lambda d: d['expand'][0]['create_table'].update(engine='MyISAM'), 'expand[0].create_table.engine'),
    (lambda d: d['expand'][0]['create_table'].pop('table'), 'expand[0].create_table.table'),
    (lambda d: d['expand'][0]['create_table']['columns'][2].update(type='VARCHAR(100); DROP TABLE users'),
     'expand[0].create_table.columns[2].type'),
    (lambda d: d['expand'][0]['create_table']['columns'][2].update(type='GEOMETRY'), 'expand[0].create_table.columns[2].type'),
    (lambda d: d['expand'][0]['create_table']['columns'][2].update(type=5), 'expand[0].create_table.columns[2].type'),
    (lambda d: d['expand'][0]['create_table']['columns'][2].pop('type'), 'expand[0].create_table.columns[2].type'),
    (lambda d: d['expand'][0]['create_table']['columns'][2].update(nullable='yes'), 'expand[0].create_table.columns[2].nullable'),
    (lambda d: d['expand'][0]['create_table']['columns'][2].update(colour='red'), 'expand[0].create_table.columns[2].colour'),
    (lambda d: d['expand'][0]['create_table']['columns'][1].update(name='user`id'), 'expand[0].create_table.columns[1].name'),
    (lambda d: d['expand'][0]['create_table']['columns'][2].update(name='id'), 'expand[0].create_table.columns[2].name'),
    (lambda d: d['expand'][0]['create_table'].update(primary_key=['nope']), 'expand[0].create_table.primary_key[0]'),
    (lambda d: d['expand'][0]['create_table']['columns'][0].update(nullable=True), 'expand[0].create_table.columns[0].nullable'),
    (lambda d: d['expand'][0]['create_table']['indexes'][0].update(columns=['user_id', 'zz']), 'expand[0].create_table.indexes[0].columns[1]'),
    (lambda d: d['expand'][0]['create_table']['foreign_keys'][0].update(on_delete='EXPLODE'), 'expand[0].create_table.foreign_keys[0].on_delete'),
    (lambda d: d['expand'][0]['create_table']['foreign_keys'][0]['references'].update(table='us;ers'),
     'expand[0].create_table.foreign_keys[0].references.table'),
    (lambda d: d['expand'][0]['create_table']['foreign_keys'][0]['references'].update(columns=['id', 'x']),
     'expand[0].create_table.foreign_keys[0].references.columns'),
    (lambda d: d['expand'][0]['create_table']['columns'][1].update(auto_increment=True), 'expand[0].create_table.columns[1].auto_increment'),
    (lambda d: d['expand'].append({'add_column': {'table': 'users', 'column': {'name': 'n', 'type': 'INT', 'auto_increment': True}}}),
     'expand[1].add_column.column.auto_increment'),
    (lambda d: d['expand'].append({'add_column': {'table': 'users', 'column': {'name': 'n', 'type': 'INT', 'default': 'abc'}}}),
     'expand[1].add_column.column.default'),
    (lambda d: d['expand'].append({'add_column': {'table': 'users', 'column': {'name': 'n', 'type': 'INT', 'nullable': False, 'default': None}}}),
     'expand[1].add_column.column.default'),
    (lambda d: d['expand'].append({'add_column': {'table': 'users', 'column': {'name': 'n', 'type': 'TEXT', 'default': 'x'}}}),
     'expand[1].add_column.column.default'),
    (lambda d: d['expand'].append({'add_column': {'table': 'users', 'column': {'name': 'n', 'type': 'VARCHAR(3)', 'default': 'abcd'}}}),
     'expand[1].add_column.column.default'),
    (lambda d: d['expand'].append({'add_column': {'table': 'users', 'column': {'name': 'n', 'type': 'VARCHAR(30)', 'default': "a\\'"}}}),
     'expand[1].add_column.column.default'),
    (lambda d: d['expand'].append({'add_column': {'table': 'users', 'column': {'name': 'n', 'type': 'INT', 'default': CURRENT_TIMESTAMP}}}),
     'expand[1].add_column.column.default'),
    (lambda d: d['expand'].append({'add_column': {'table': 'users', 'column': {'name': 'n', 'type': 'INT', 'charset': 'utf8mb4'}}}),
     'expand[1].add_column.column.charset'),
    (lambda d: d['expand'].append({'add_column': {'table': 'users', 'column': {'name': 'n', 'type': 'TEXT', 'collation': 'utf8mb4_bin;'}}}),
     'expand[1].add_column.column.collation'),
    (lambda d: d['expand'].append({'create_index': {'table': 'users', 'name': 'i', 'columns': []}}), 'expand[1].create_index.columns'),
    (lambda d: d['expand'].append({'create_index': {'table': 'users', 'name': 'i', 'columns': ['a', 'A']}}),
     'expand[1].create_index.columns[1]'),
    (lambda d: d['expand'].append({'sql': {'up': 'SELECT 1'}}), 'expand[1].sql.down'),
    (lambda d: d['contract'].append({'sql': {'up': 'SELECT 1', 'down': 'SELECT 2'}}), 'contract[1].sql.down'),
    (lambda d: d['contract'].append({'add_column': {}}), 'contract[1].add_column'),
    (lambda d: d['contract'].append({'drop_index': {'table': 'users', 'name': 'PRIMARY'}}), 'contract[1].drop_index.name'),
    (lambda d: d['expand'].append(copy.deepcopy(d['expand'][0])), 'expand[1].create_table.table'),
    (lambda d: d['sync'][0].pop('to'), 'sync[0].to'),
    (lambda d: d['sync'][0].update(direction='backward'), 'sync[0].direction'),
    (lambda d: d['sync'][0]['to'].update(columns=['a', 'b']), 'sync[0].to.columns'),
    (lambda d: d['sync'][0]['from'].update(columns=['id']), 'sync[0].from.columns[0]'),
    (lambda d: d['sync'][0]['from'].update(key='id`'), 'sync[0].from.key'),
    (lambda d: d['sync'][0]['to'].update(table='users', key='id', columns=['address_line_1']), 'sync[0].to.columns[0]'),
    (lambda d: d['sync'][0]['to'].update(table='users', key='uid', columns=['addr']), 'sync[0].to.key'),
    (lambda d: d['sync'].append(copy.deepcopy(d['sync'][0])), 'sync[1].to.columns[0]'),
    (lambda d: d['sync'][0]['from'].update(where='1=1'), 'sync[0].from.where'),
])
def test_validation_names_the_field(mutate, field):
    d = base()
    mutate(d)
    err = spec_error(d)
    assert err.field == field, str(err)
    assert str(err).startswith(field + ': ')


def test_same_table_sync():
    d = base()
    d['sync'] = [{'from': {'table': 'users', 'key': 'id', 'columns': ['email']},
                  'to': {'table': 'users', 'key': 'id', 'columns': ['email_address']}, 'direction': 'both'}]
    s = parse_migration(d).sync[0]
    assert s.kind == 'same' and s.pairs == (('email', 'email_address'),)


@pytest.mark.parametrize('hostile', ['users`; DROP TABLE users; --', "users'", 'users"', 'users;', 'us ers', 'users\x00', '', 'a.b'])
@pytest.mark.parametrize('where', ['table', 'column', 'index', 'sync'])
def test_hostile_identifiers_rejected_everywhere(hostile, where):
    d = base()
    if where == 'table':
        d['expand'][0]['create_table']['table'] = hostile
    elif where == 'column':
        d['contract'][0]['drop_columns']['columns'] = [hostile]
    elif where == 'index':
        d['expand'][0]['create_table']['indexes'][0]['name'] = hostile
    else:
        d['sync'][0]['to']['table'] = hostile
    with pytest.raises(IdentifierError):
        parse_migration(d)


def test_reserved_words_and_unicode_are_fine():
    d = base()
    d['expand'].append({'create_table': {'table': 'order', 'columns': [{'name': 'select', 'type': 'INT'}, {'name': 'ключ', 'type': 'TEXT'}]}})
    m = parse_migration(d)
    assert m.expand[1].args['columns'][1].sql() == '`ключ` TEXT NULL'


@pytest.mark.parametrize('col, sql', [
    ({'name': 'n', 'type': 'INT', 'nullable': False, 'default': 0}, '`n` INT NOT NULL DEFAULT 0'),
    ({'name': 'n', 'type': 'VARCHAR(10)', 'default': "it's"}, "`n` VARCHAR(10) NULL DEFAULT 'it''s'"),
    ({'name': 'n', 'type': 'VARCHAR(10)', 'default': None}, '`n` VARCHAR(10) NULL DEFAULT NULL'),
    ({'name': 'n', 'type': 'BOOLEAN', 'nullable': False, 'default': True}, '`n` BOOLEAN NOT NULL DEFAULT TRUE'),
    ({'name': 'n', 'type': 'DECIMAL(5,2)', 'default': 1.5}, '`n` DECIMAL(5,2) NULL DEFAULT 1.5'),
    ({'name': 'n', 'type': 'DATETIME(3)', 'default': 'current_timestamp'}, '`n` DATETIME(3) NULL DEFAULT CURRENT_TIMESTAMP(3)'),
    ({'name': 'n', 'type': 'TIMESTAMP', 'nullable': False, 'default': 'CURRENT_TIMESTAMP'}, '`n` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP'),
    ({'name': 'n', 'type': 'DATE', 'default': '2024-01-02'}, "`n` DATE NULL DEFAULT '2024-01-02'"),
    ({'name': 'n', 'type': "ENUM('a','b')", 'default': 'b'}, "`n` ENUM('a', 'b') NULL DEFAULT 'b'"),
    ({'name': 'n', 'type': 'VARCHAR(10)', 'charset': 'utf8mb4', 'collation': 'utf8mb4_bin'},
     '`n` VARCHAR(10) CHARACTER SET `utf8mb4` COLLATE `utf8mb4_bin` NULL'),
    ({'name': 'n', 'type': 'VARCHAR(40)', 'default': "x'; DROP TABLE users; --"}, "`n` VARCHAR(40) NULL DEFAULT 'x''; DROP TABLE users; --'"),
])
def test_column_sql(col, sql):
    assert parse_column(col, 'c').sql() == sql


def test_enum_default_must_be_a_value():
    with pytest.raises(SpecError):
        parse_column({'name': 'n', 'type': "ENUM('a')", 'default': 'z'}, 'c')


def test_empty_phases_allowed():
    m = parse_migration({'id': 7, 'description': 'nothing'})
    assert m.expand == [] and m.sync == [] and m.contract == []
