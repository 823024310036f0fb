# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse and validate a zdt.bluegreen migration file (the README's "Writing a migration file" shows the format).

Everything is validated before anything runs: unknown keys, missing fields, wrong types, bad
identifiers and bad column types raise :class:`SpecError` whose ``field`` names the path of the
offending value, e.g. ``expand[0].create_table.columns[2].type``.

Column types are parsed against the grammar of :mod:`mysql_types`; SQL is rendered from the
validated parts, never from the user's text.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import hashlib
import json
import math
import os
import re
from collections import OrderedDict, namedtuple

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import (
    literal_text_problem, quote_identifier, sql_literal, validate_identifier)
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_types import BLOB_TYPES, NO_DEFAULT_TYPES, TEXT_TYPES, parse_type
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_expressions import expression_problem

try:
    import yaml
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None
    HAS_YAML = False


class _NoDefault(object):
    """Sentinel: the column has no DEFAULT clause."""

    def __repr__(self):
        return 'NO_DEFAULT'

    def __bool__(self):
        return False

    __nonzero__ = __bool__


NO_DEFAULT = _NoDefault()
CURRENT_TIMESTAMP = 'CURRENT_TIMESTAMP'


# --------------------------------------------------------------------------------------------
# Spec objects
# --------------------------------------------------------------------------------------------

class Column(namedtuple('Column', 'name type nullable default auto_increment charset collation')):
    """A validated column definition; ``default`` is NO_DEFAULT, a literal, None (NULL) or CURRENT_TIMESTAMP."""

    __slots__ = ()

    def sql(self, force_not_null=False):
        parts = [quote_identifier(self.name), self.type.sql()]
        if self.charset:
            parts.append('CHARACTER SET ' + quote_identifier(self.charset))
        if self.collation:
            parts.append('COLLATE ' + quote_identifier(self.collation))
        parts.append('NOT NULL' if (force_not_null or not self.nullable) else 'NULL')
        if self.default is not NO_DEFAULT:
            if self.default == CURRENT_TIMESTAMP and self.type.name in ('DATETIME', 'TIMESTAMP'):
                parts.append('DEFAULT CURRENT_TIMESTAMP' + ('(%d)' % self.type.length if self.type.length else ''))
            else:
                parts.append('DEFAULT ' + sql_literal(self.default))
        if self.auto_increment:
            parts.append('AUTO_INCREMENT')
        return ' '.join(parts)


Index = namedtuple('Index', 'name columns unique')
ForeignKey = namedtuple('ForeignKey', 'name columns ref_table ref_columns on_delete on_update')


class Op(namedtuple('Op', 'kind args field')):
    """One expand/contract operation.

    ``kind``: create_table | add_column | alter_column | add_foreign_key | create_index | drop_index | drop_columns | drop_table | sql.
    ``args`` (normalized): create_table {table, columns: [Column], primary_key: tuple, indexes: [Index],
    foreign_keys: [ForeignKey]}; add_column {table, column: Column}; alter_column {table, column, rename_to, type
    (ColumnType or None), nullable (bool or None), default (raw value or NO_DEFAULT: checked against the type the new
    column gets, known only from the live schema when ``type`` is omitted), charset, collation, up, down};
    add_foreign_key {table, foreign_key: ForeignKey};
    create_index {table, name, columns: tuple, unique}; drop_index {table, name}; drop_columns {table, columns: tuple};
    drop_table {table}; sql {up, down}.
    ``field`` is its path, e.g. ``expand[0]``; a contract step an ``alter_column`` implies (dropping the old column)
    keeps the path of that op, e.g. ``expand[1].alter_column``.
    """

    __slots__ = ()

    @property
    def table(self):
        return self.args.get('table')

    def describe(self):
        a = self.args
        if self.kind == 'create_table':
            what = a['table']
        elif self.kind == 'add_column':
            what = '%s.%s' % (a['table'], a['column'].name)
        elif self.kind == 'alter_column':
            what = '%s.%s%s' % (a['table'], a['column'], ' -> %s' % a['rename_to'] if a['rename_to'] else ' in place')
        elif self.kind in ('create_index', 'drop_index'):
            what = '%s on %s' % (a['name'], a['table'])
        elif self.kind == 'add_foreign_key':
            what = '%s on %s' % (a['foreign_key'].name, a['table'])
        elif self.kind == 'drop_columns':
            what = '%s.(%s)' % (a['table'], ', '.join(a['columns']))
        elif self.kind == 'drop_table':
            what = a['table']
        else:
            what = 'statement'
        return '%s %s %s' % (self.field, self.kind, what)


class Mapping(namedtuple('Mapping', 'from_column to_column up down writes_back field')):
    """One mapped column pair: ``up`` (old row -> new value) and ``down`` (new row -> old value) are SQL expressions
    (:mod:`sync_expressions`) or None (the value copied unchanged).  ``writes_back`` is False on the pairs of a split
    that leave writing the old column to the one pair that gives ``down``.  ``field`` is the pair's path (its ``.up``
    and ``.down`` name the expressions)."""

    __slots__ = ()


class SyncSpec(namedtuple('SyncSpec', 'index from_table from_key from_columns to_table to_key to_columns direction kind '
                                      'mappings origin')):
    """One ``sync`` entry. ``kind`` is ``cross`` (different tables) or ``same`` (one table).

    ``mappings``: a tuple of :class:`Mapping`, one per pair, when the pairs are mapped (expressions, a split); None
    for plain pairs copied as they are.  ``origin``: the path of the
    ``alter_column`` op an entry was derived from (its ``from_key`` is then None until the live primary key fills it),
    None for an entry of the ``sync`` list.
    """

    __slots__ = ()

    def __new__(cls, index, from_table, from_key, from_columns, to_table, to_key, to_columns, direction, kind,
                mappings=None, origin=None):
        return super(SyncSpec, cls).__new__(cls, index, from_table, from_key, from_columns, to_table, to_key, to_columns,
                                            direction, kind, mappings, origin)

    @property
    def field(self):
        return self.origin or 'sync[%d]' % self.index

    def column_field(self, side, j):
        """The path of the ``j``-th column of ``side`` (from | to) in the migration file."""
        if self.origin:
            return '%s.%s' % (self.mappings[j].field, 'column' if side == 'from' else 'rename_to')
        if self.mappings is not None:
            return '%s.%s' % (self.mappings[j].field, side)
        return '%s.%s.columns[%d]' % (self.field, side, j)

    def key_field(self, side):
        return '%s.table' % self.field if self.origin else '%s.%s.key' % (self.field, side)

    @property
    def pairs(self):
        return tuple(zip(self.from_columns, self.to_columns))


class Migration(namedtuple('Migration', 'id description expand sync contract checksum source')):
    """A validated migration; ``checksum`` is the sha256 of the canonical JSON of the raw data."""

    __slots__ = ()

    def ops(self, phase):
        if phase == 'expand':
            return self.expand
        if phase == 'contract':
            return self.contract
        raise ValueError('unknown phase %r' % (phase,))


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------

def _mapping(value, field, required=(), optional=()):
    if not isinstance(value, dict):
        raise SpecError(field, 'must be a mapping, got %s' % _type_name(value))
    for key in value:
        if not isinstance(key, str) or (key not in required and key not in optional):
            allowed = ', '.join(sorted(tuple(required) + tuple(optional)))
            raise SpecError(_join(field, str(key)), 'unknown key (allowed: %s)' % allowed)
    for key in required:
        if key not in value:
            raise SpecError(_join(field, key), 'required field is missing')
    return value


def _join(field, key):
    return '%s.%s' % (field, key) if field else key


def _type_name(value):
    if value is None:
        return 'null'
    return {dict: 'mapping', list: 'list', str: 'string', bool: 'boolean', int: 'integer', float: 'float'}.get(
        type(value), type(value).__name__)


def _ident(value, field):
    return validate_identifier(value, field)


def _ident_list(value, field, min_items=1):
    if not isinstance(value, list):
        raise SpecError(field, 'must be a list of names, got %s' % _type_name(value))
    if len(value) < min_items:
        raise SpecError(field, 'must list at least %d name(s)' % min_items)
    names = tuple(_ident(v, '%s[%d]' % (field, i)) for i, v in enumerate(value))
    seen = set()
    for i, n in enumerate(names):
        if n.lower() in seen:
            raise SpecError('%s[%d]' % (field, i), 'duplicate name %r' % n)
        seen.add(n.lower())
    return names


def _bool(value, field, default):
    if value is None:
        return default
    if not isinstance(value, bool):
        raise SpecError(field, 'must be true or false, got %s' % _type_name(value))
    return value


def _str(value, field, allow_empty=False, max_len=None):
    if not isinstance(value, str):
        raise SpecError(field, 'must be a string, got %s' % _type_name(value))
    if not allow_empty and not value.strip():
        raise SpecError(field, 'must not be empty')
    if max_len is not None and len(value) > max_len:
        raise SpecError(field, 'longer than %d characters' % max_len)
    return value


_DATE_RE = re.compile(r'^\d{4}-\d{2}-\d{2}\Z')
_TIME_RE = re.compile(r'^-?\d{1,3}:\d{2}:\d{2}(\.\d{1,6})?\Z')
_DATETIME_RE = re.compile(r'^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?\Z')


def _default(value, ctype, nullable, field):
    """Validate a default value against the column type; return the normalized literal."""
    def bad(why):
        return SpecError(field, why)

    if value is None:
        if not nullable:
            raise bad('a NOT NULL column cannot default to null')
        return None
    if ctype.name in NO_DEFAULT_TYPES:
        raise bad('%s columns cannot have a literal default' % ctype.name)
    if isinstance(value, (datetime.datetime, datetime.date)):   # YAML timestamps
        value = value.isoformat(' ') if isinstance(value, datetime.datetime) else value.isoformat()
    if isinstance(value, str) and value.upper() == CURRENT_TIMESTAMP:
        if ctype.name not in ('DATETIME', 'TIMESTAMP'):
            raise bad('CURRENT_TIMESTAMP is only a default for DATETIME and TIMESTAMP columns')
        return CURRENT_TIMESTAMP
    if ctype.name == 'BOOLEAN':
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise bad('BOOLEAN default must be true or false')
    if ctype.is_integer:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad('default for %s must be an integer' % ctype.name)
        if ctype.unsigned and value < 0:
            raise bad('default for an UNSIGNED column must not be negative')
        return value
    if ctype.name in ('DECIMAL', 'FLOAT', 'DOUBLE'):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str) and re.match(r'^-?\d+(\.\d+)?\Z', value):
                return value
            raise bad('default for %s must be a number' % ctype.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise bad('default must be a finite number')
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise bad('default must be a literal (string or number), got %s' % _type_name(value))
    if ctype.is_temporal:
        value = str(value)
        regex = {'DATE': _DATE_RE, 'TIME': _TIME_RE}.get(ctype.name, _DATETIME_RE)
        if not regex.match(value):
            raise bad('default %r is not a valid %s literal' % (value, ctype.name))
        return value
    value = value if isinstance(value, str) else str(value)
    problem = literal_text_problem(value)
    if problem:
        raise bad(problem)
    if ctype.name in ('CHAR', 'VARCHAR') and len(value) > ctype.length:
        raise bad('default is longer than %s(%d)' % (ctype.name, ctype.length))
    if ctype.name == 'ENUM' and value not in ctype.values:
        raise bad('default %r is not one of the ENUM values' % (value,))
    return value


def validate_default(value, ctype, nullable, field):
    """A ``default`` checked against a column type (the planner's, when the type is the live column's)."""
    return _default(value, ctype, nullable, field)


COLUMN_KEYS = ('name', 'type', 'nullable', 'default', 'auto_increment', 'charset', 'collation')


def parse_column(data, field, allow_auto_increment=True):
    _mapping(data, field, required=('name', 'type'), optional=COLUMN_KEYS[2:])
    name = _ident(data['name'], _join(field, 'name'))
    ctype = parse_type(data['type'], _join(field, 'type'))
    nullable = _bool(data.get('nullable'), _join(field, 'nullable'), True)
    auto_increment = _bool(data.get('auto_increment'), _join(field, 'auto_increment'), False)
    if auto_increment:
        if not allow_auto_increment:
            raise SpecError(_join(field, 'auto_increment'), 'adding an AUTO_INCREMENT column cannot be done online; '
                                                            'create it with the table instead')
        if not ctype.is_integer:
            raise SpecError(_join(field, 'auto_increment'), 'AUTO_INCREMENT needs an integer type')
        if 'default' in data:
            raise SpecError(_join(field, 'default'), 'an AUTO_INCREMENT column takes no default')
    default = NO_DEFAULT
    if 'default' in data:
        default = _default(data['default'], ctype, nullable, _join(field, 'default'))
    charset = collation = None
    for key in ('charset', 'collation'):
        if data.get(key) is not None:
            if not ctype.takes_charset:
                raise SpecError(_join(field, key), '%s only applies to CHAR, VARCHAR, TEXT and ENUM columns' % key)
            value = _ident(data[key], _join(field, key))
            if key == 'charset':
                charset = value
            else:
                collation = value
    return Column(name, ctype, nullable, default, auto_increment, charset, collation)


def _parse_index(data, field):
    _mapping(data, field, required=('name', 'columns'), optional=('unique',))
    return Index(_ident(data['name'], _join(field, 'name')), _ident_list(data['columns'], _join(field, 'columns')),
                 _bool(data.get('unique'), _join(field, 'unique'), False))


FK_ACTIONS = ('RESTRICT', 'CASCADE', 'SET NULL', 'NO ACTION')


def _parse_fk(data, field, column_names):
    _mapping(data, field, required=('name', 'columns', 'references'), optional=('on_delete', 'on_update'))
    name = _ident(data['name'], _join(field, 'name'))
    cols = _ident_list(data['columns'], _join(field, 'columns'))
    for i, c in enumerate(cols):
        if column_names is not None and c.lower() not in column_names:
            raise SpecError('%s.columns[%d]' % (field, i), 'column %r is not defined in this table' % c)
    ref_field = _join(field, 'references')
    ref = _mapping(data['references'], ref_field, required=('table', 'columns'))
    ref_table = _ident(ref['table'], _join(ref_field, 'table'))
    ref_cols = _ident_list(ref['columns'], _join(ref_field, 'columns'))
    if len(ref_cols) != len(cols):
        raise SpecError(_join(ref_field, 'columns'), 'must list as many columns as %s.columns' % field)
    actions = {}
    for key in ('on_delete', 'on_update'):
        value = data.get(key)
        if value is None:
            actions[key] = None
            continue
        norm = ' '.join(str(value).upper().replace('_', ' ').split()) if isinstance(value, str) else None
        if norm not in FK_ACTIONS:
            raise SpecError(_join(field, key), 'must be one of %s' % ', '.join(FK_ACTIONS))
        actions[key] = norm
    return ForeignKey(name, cols, ref_table, ref_cols, actions['on_delete'], actions['on_update'])


def _parse_create_table(args, field):
    _mapping(args, field, required=('table', 'columns'), optional=('primary_key', 'indexes', 'foreign_keys'))
    table = _ident(args['table'], _join(field, 'table'))
    cfield = _join(field, 'columns')
    if not isinstance(args['columns'], list) or not args['columns']:
        raise SpecError(cfield, 'must be a non-empty list of columns')
    columns = [parse_column(c, '%s[%d]' % (cfield, i)) for i, c in enumerate(args['columns'])]
    names = {}
    for i, c in enumerate(columns):
        if c.name.lower() in names:
            raise SpecError('%s[%d].name' % (cfield, i), 'duplicate column %r' % c.name)
        names[c.name.lower()] = c
    primary_key = ()
    if args.get('primary_key') is not None:
        pfield = _join(field, 'primary_key')
        primary_key = _ident_list(args['primary_key'], pfield)
        for i, p in enumerate(primary_key):
            col = names.get(p.lower())
            if col is None:
                raise SpecError('%s[%d]' % (pfield, i), 'column %r is not defined in this table' % p)
            pos = [c.name.lower() for c in columns].index(p.lower())
            if args['columns'][pos].get('nullable') is True:
                raise SpecError('%s[%d].nullable' % (cfield, pos), 'a primary key column cannot be nullable')
            if col.type.name in TEXT_TYPES + BLOB_TYPES + ('JSON',):
                raise SpecError('%s[%d]' % (pfield, i), 'a %s column cannot be in a key without a prefix length' % col.type.name)
    indexes = []
    ifield = _join(field, 'indexes')
    if args.get('indexes') is not None:
        if not isinstance(args['indexes'], list):
            raise SpecError(ifield, 'must be a list')
        index_names = set()
        for i, d in enumerate(args['indexes']):
            idx = _parse_index(d, '%s[%d]' % (ifield, i))
            if idx.name.lower() in index_names or idx.name.upper() == 'PRIMARY':
                raise SpecError('%s[%d].name' % (ifield, i), 'duplicate or reserved index name %r' % idx.name)
            index_names.add(idx.name.lower())
            for j, c in enumerate(idx.columns):
                if c.lower() not in names:
                    raise SpecError('%s[%d].columns[%d]' % (ifield, i, j), 'column %r is not defined in this table' % c)
                if names[c.lower()].type.name in TEXT_TYPES + BLOB_TYPES + ('JSON',):
                    raise SpecError('%s[%d].columns[%d]' % (ifield, i, j), 'a %s column cannot be indexed without a prefix length'
                                    % names[c.lower()].type.name)
            indexes.append(idx)
    auto = [i for i, c in enumerate(columns) if c.auto_increment]
    if len(auto) > 1:
        raise SpecError('%s[%d].auto_increment' % (cfield, auto[1]), 'only one AUTO_INCREMENT column per table')
    if auto:
        name = columns[auto[0]].name.lower()
        keyed = (primary_key and primary_key[0].lower() == name) or any(ix.columns[0].lower() == name for ix in indexes)
        if not keyed:
            raise SpecError('%s[%d].auto_increment' % (cfield, auto[0]), 'an AUTO_INCREMENT column must lead the primary key or an index')
    fks = []
    ffield = _join(field, 'foreign_keys')
    if args.get('foreign_keys') is not None:
        if not isinstance(args['foreign_keys'], list):
            raise SpecError(ffield, 'must be a list')
        fk_names = set()
        for i, d in enumerate(args['foreign_keys']):
            fk = _parse_fk(d, '%s[%d]' % (ffield, i), names)
            if fk.name.lower() in fk_names:
                raise SpecError('%s[%d].name' % (ffield, i), 'duplicate foreign key name %r' % fk.name)
            fk_names.add(fk.name.lower())
            if fk.on_delete == 'SET NULL' or fk.on_update == 'SET NULL':
                for c in fk.columns:
                    if not names[c.lower()].nullable or c.lower() in [p.lower() for p in primary_key]:
                        raise SpecError('%s[%d]' % (ffield, i), 'SET NULL needs nullable columns (%s is NOT NULL)' % c)
            fks.append(fk)
    return {'table': table, 'columns': columns, 'primary_key': primary_key, 'indexes': indexes, 'foreign_keys': fks}


def _parse_add_column(args, field):
    _mapping(args, field, required=('table', 'column'))
    table = _ident(args['table'], _join(field, 'table'))
    column = parse_column(args['column'], _join(field, 'column'), allow_auto_increment=False)
    return {'table': table, 'column': column}


def _expression(value, field):
    """An ``up`` / ``down`` SQL expression (the documented escape hatch), checked on its text here, by the server later."""
    problem = expression_problem(value)
    if problem:
        raise SpecError(field, problem)
    return value.strip()


ALTER_COLUMN_KEYS = ('rename_to', 'type', 'nullable', 'default', 'charset', 'collation', 'up', 'down')


def _parse_alter_column(args, field):
    _mapping(args, field, required=('table', 'column'), optional=ALTER_COLUMN_KEYS)
    table = _ident(args['table'], _join(field, 'table'))
    column = _ident(args['column'], _join(field, 'column'))
    rename_to = None
    if args.get('rename_to') is not None:
        rename_to = _ident(args['rename_to'], _join(field, 'rename_to'))
        if rename_to.lower() == column.lower():
            raise SpecError(_join(field, 'rename_to'), 'must differ from column (omit rename_to to change the column in place)')
    ctype = parse_type(args['type'], _join(field, 'type')) if args.get('type') is not None else None
    nullable = _bool(args.get('nullable'), _join(field, 'nullable'), None)
    default = NO_DEFAULT
    if 'default' in args:
        default = args['default']
        if ctype is not None:   # else checked against the live column's type by the planner
            default = _default(default, ctype, nullable is not False, _join(field, 'default'))
    result = {'table': table, 'column': column, 'rename_to': rename_to, 'type': ctype, 'nullable': nullable, 'default': default,
              'charset': None, 'collation': None, 'up': None, 'down': None}
    for key in ('charset', 'collation'):
        if args.get(key) is not None:
            if ctype is not None and not ctype.takes_charset:
                raise SpecError(_join(field, key), '%s only applies to CHAR, VARCHAR, TEXT and ENUM columns' % key)
            result[key] = _ident(args[key], _join(field, key))
    for key in ('up', 'down'):
        if args.get(key) is not None:
            if rename_to is None:
                raise SpecError(_join(field, key), 'an in-place change takes no expressions; give rename_to to add a new column '
                                                   'that the triggers fill through up and down')
            result[key] = _expression(args[key], _join(field, key))
    if rename_to is None and ctype is None and nullable is None and default is NO_DEFAULT and not result['charset'] \
            and not result['collation']:
        raise SpecError(field, 'changes nothing: give rename_to, or type, nullable or default for an in-place change')
    return result


def _parse_add_foreign_key(args, field):
    """A foreign key added to an existing table (the live columns are checked by the planner)."""
    _mapping(args, field, required=('table', 'name', 'columns', 'references'), optional=('on_delete', 'on_update'))
    table = _ident(args['table'], _join(field, 'table'))
    fk = _parse_fk(dict((k, v) for k, v in args.items() if k != 'table'), field, None)
    return {'table': table, 'foreign_key': fk}


def _parse_create_index(args, field):
    _mapping(args, field, required=('table', 'name', 'columns'), optional=('unique',))
    return {'table': _ident(args['table'], _join(field, 'table')),
            'name': _ident(args['name'], _join(field, 'name')),
            'columns': _ident_list(args['columns'], _join(field, 'columns')),
            'unique': _bool(args.get('unique'), _join(field, 'unique'), False)}


def _parse_drop_index(args, field):
    _mapping(args, field, required=('table', 'name'))
    name = _ident(args['name'], _join(field, 'name'))
    if name.upper() == 'PRIMARY':
        raise SpecError(_join(field, 'name'), 'dropping the primary key is not an online change')
    return {'table': _ident(args['table'], _join(field, 'table')), 'name': name}


def _parse_drop_columns(args, field):
    _mapping(args, field, required=('table', 'columns'))
    return {'table': _ident(args['table'], _join(field, 'table')), 'columns': _ident_list(args['columns'], _join(field, 'columns'))}


def _parse_drop_table(args, field):
    _mapping(args, field, required=('table',))
    return {'table': _ident(args['table'], _join(field, 'table'))}


def _parse_sql(args, field, phase):
    if phase == 'expand':
        _mapping(args, field, required=('up', 'down'))
        return {'up': _str(args['up'], _join(field, 'up')), 'down': _str(args['down'], _join(field, 'down'))}
    _mapping(args, field, required=('up',))
    return {'up': _str(args['up'], _join(field, 'up')), 'down': None}


OP_PARSERS = {
    'expand': {'create_table': _parse_create_table, 'add_column': _parse_add_column, 'alter_column': _parse_alter_column,
               'add_foreign_key': _parse_add_foreign_key, 'create_index': _parse_create_index, 'sql': None},
    'contract': {'drop_columns': _parse_drop_columns, 'create_index': _parse_create_index,
                 'drop_index': _parse_drop_index, 'drop_table': _parse_drop_table, 'sql': None},
}


def _parse_ops(value, phase):
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(phase, 'must be a list of operations, got %s' % _type_name(value))
    parsers = OP_PARSERS[phase]
    ops = []
    for i, item in enumerate(value):
        field = '%s[%d]' % (phase, i)
        if not isinstance(item, dict) or len(item) != 1:
            raise SpecError(field, 'must be a mapping with exactly one operation key (one of: %s)' % ', '.join(sorted(parsers)))
        kind = next(iter(item))
        if kind not in parsers:
            raise SpecError(_join(field, str(kind)), 'unknown %s operation (allowed: %s)' % (phase, ', '.join(sorted(parsers))))
        ofield = _join(field, kind)
        if kind == 'sql':
            args = _parse_sql(item[kind], ofield, phase)
        else:
            args = parsers[kind](item[kind], ofield)
        ops.append(Op(kind, args, field))
    return ops


def _check_op_sequence(ops, phase):
    """Cross-op checks within one phase (the live schema is checked later, by the planner)."""
    created = {}
    for op in ops:
        if op.kind == 'create_table':
            t = op.args['table']
            if t in created:
                raise SpecError(op.field + '.create_table.table', 'table %r is created twice in %s' % (t, phase))
            created[t] = op
    seen_fk = {}
    for op in ops:
        if op.kind == 'add_foreign_key':
            key = (op.args['table'], op.args['foreign_key'].name.lower())
            if key in seen_fk:
                raise SpecError(op.field + '.add_foreign_key.name', 'foreign key %r on %r is added twice' % (key[1], key[0]))
            seen_fk[key] = op
    seen_idx = {}
    for op in ops:
        if op.kind == 'create_index':
            key = (op.args['table'], op.args['name'].lower())
            if key in seen_idx:
                raise SpecError(op.field + '.create_index.name', 'index %r on %r is created twice' % key)
            seen_idx[key] = op


def _alter_column_groups(expand):
    """The renaming ``alter_column`` ops of an expand grouped by the old column they read: (table, column) -> [op].

    Checks what only the whole list shows: a new column named twice or already added by add_column, an old column
    that is another op's new column (chains), and a split (several ops on one column) whose ``down`` is not given by
    exactly one of them (both would write the old column)."""
    groups = OrderedDict()
    new_columns = {}
    for op in expand:
        if op.kind == 'add_column':
            new_columns[(op.args['table'], op.args['column'].name.lower())] = op.field + '.add_column.column.name'
    for op in expand:
        if op.kind != 'alter_column':
            continue
        a = op.args
        field = op.field + '.alter_column'
        if a['rename_to'] is None:
            continue
        key = (a['table'], a['rename_to'].lower())
        if key in new_columns:
            raise SpecError(field + '.rename_to', 'column %s.%s is already added by %s' % (a['table'], a['rename_to'], new_columns[key]))
        new_columns[key] = field + '.rename_to'
        groups.setdefault((a['table'], a['column'].lower()), []).append(op)
    for op in expand:
        if op.kind == 'alter_column' and (op.args['table'], op.args['column'].lower()) in new_columns:
            made_by = new_columns[(op.args['table'], op.args['column'].lower())]
            raise SpecError(op.field + '.alter_column.column', 'column %s.%s is a new column of this migration (%s); change a column '
                                                               'in a later migration' % (op.args['table'], op.args['column'], made_by))
    in_place = set()
    for op in expand:
        if op.kind == 'alter_column' and op.args['rename_to'] is None:
            key = (op.args['table'], op.args['column'].lower())
            if key in groups or key in in_place:
                raise SpecError(op.field + '.alter_column.column', 'column %s.%s is changed by another alter_column too'
                                % (op.args['table'], op.args['column']))
            in_place.add(key)
    for ops in groups.values():
        if len(ops) == 1:
            a = ops[0].args
            if a['up'] is not None and a['down'] is None and a['type'] is not None:
                raise SpecError(ops[0].field + '.alter_column.down',
                                'up without down is refused when the type changes: give the expression that turns a new value back '
                                'into the old column')
            continue
        with_down = [op for op in ops if op.args['down'] is not None]
        if len(with_down) != 1:
            field = (with_down[1] if with_down else ops[0]).field + '.alter_column.down'
            raise SpecError(field, 'column %s.%s is split into %s: give down on exactly one of them (it writes the old column '
                                   'back from all the new ones)' % (ops[0].args['table'], ops[0].args['column'],
                                                                    ', '.join(op.args['rename_to'] for op in ops)))
    return groups


def _alter_column_syncs(groups, first_index):
    """One same-table sync entry per renamed (or split) old column, indexed after the ``sync`` list's entries."""
    result = []
    for n, ((table, _lower), ops) in enumerate(groups.items()):
        single = len(ops) == 1
        mappings = tuple(Mapping(op.args['column'], op.args['rename_to'], op.args['up'], op.args['down'],
                                 single or op.args['down'] is not None, op.field + '.alter_column') for op in ops)
        column = ops[0].args['column']
        result.append(SyncSpec(first_index + n, table, None, tuple(column for _op in ops), table, None,
                               tuple(op.args['rename_to'] for op in ops), 'both', 'same', mappings, ops[0].field + '.alter_column'))
    return result


def _alter_column_contract(groups, contract):
    """The contract steps the renames imply: drop each old column, unless the contract drops it (or its table) itself."""
    dropped = set()
    for op in contract:
        if op.kind == 'drop_columns':
            dropped.update((op.args['table'], c.lower()) for c in op.args['columns'])
        elif op.kind == 'drop_table':
            dropped.add((op.args['table'], None))
    result = []
    for (table, lower), ops in groups.items():
        if (table, lower) in dropped or (table, None) in dropped:
            continue
        result.append(Op('drop_columns', {'table': table, 'columns': (ops[0].args['column'],)}, ops[0].field + '.alter_column'))
    return result


def _parse_key(value, field):
    """A ``key``: one column name, or a list of them (a composite primary key; then a tuple)."""
    if isinstance(value, list):
        names = _ident_list(value, field)
        return names if len(names) > 1 else names[0]
    return _ident(value, field)


def key_names(key):
    """The column names of a key (one, or several for a composite key)."""
    return tuple(key) if isinstance(key, (list, tuple)) else (key,)


def _parse_endpoint(data, field, mapped=False):
    """(table, key, columns) of a ``from`` / ``to``; with entry-level ``columns`` (mapped) an endpoint names no columns."""
    if mapped:
        _mapping(data, field, required=('table', 'key'))
        return _ident(data['table'], _join(field, 'table')), _parse_key(data['key'], _join(field, 'key')), ()
    _mapping(data, field, required=('table', 'key', 'columns'))
    return (_ident(data['table'], _join(field, 'table')), _parse_key(data['key'], _join(field, 'key')),
            _ident_list(data['columns'], _join(field, 'columns')))


def _parse_mapped_pairs(value, field, direction):
    """Entry-level ``columns`` of a cross-table entry: [{from, to, up, down}] -> (from columns, to columns, mappings).

    A split (several pairs from one old column) gives ``down`` on exactly one pair: it writes the old column back
    from the new row; two would both write it."""
    if not isinstance(value, list) or not value:
        raise SpecError(field, 'must be a non-empty list of {from, to, up, down} pairs')
    pairs = []
    for j, data in enumerate(value):
        pfield = '%s[%d]' % (field, j)
        _mapping(data, pfield, required=('from', 'to'), optional=('up', 'down'))
        source = _ident(data['from'], _join(pfield, 'from'))
        target = _ident(data['to'], _join(pfield, 'to'))
        up = _expression(data['up'], _join(pfield, 'up')) if data.get('up') is not None else None
        down = _expression(data['down'], _join(pfield, 'down')) if data.get('down') is not None else None
        if down is not None and direction != 'both':
            raise SpecError(_join(pfield, 'down'), "down writes the old table back: it needs direction 'both'")
        pairs.append((source, target, up, down, pfield))
    mappings = []
    for j, (source, target, up, down, pfield) in enumerate(pairs):
        group = [p for p in pairs if p[0].lower() == source.lower()]
        if len(group) > 1 and direction == 'both':
            with_down = [p for p in group if p[3] is not None]
            if len(with_down) != 1:
                raise SpecError(_join((with_down[1] if with_down else group[0])[4], 'down'),
                                'column %s is split into %s: give down on exactly one of the pairs (it writes the old column back '
                                'from all of them)' % (source, ', '.join(p[1] for p in group)))
        writes_back = direction == 'both' and (len(group) == 1 or down is not None)
        mappings.append(Mapping(source, target, up, down, writes_back, pfield))
    return tuple(m.from_column for m in mappings), tuple(m.to_column for m in mappings), tuple(mappings)


def _parse_sync(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError('sync', 'must be a list, got %s' % _type_name(value))
    result = []
    targets = {}
    for i, item in enumerate(value):
        field = 'sync[%d]' % i
        _mapping(item, field, required=('from', 'to'), optional=('direction', 'columns'))
        mapped = item.get('columns') is not None
        ft, fk, fc = _parse_endpoint(item['from'], field + '.from', mapped)
        tt, tk, tc = _parse_endpoint(item['to'], field + '.to', mapped)
        direction = item.get('direction', 'both')
        if direction is None:
            direction = 'both'
        if direction not in ('forward', 'both'):
            raise SpecError(field + '.direction', "must be 'forward' or 'both', got %r" % (direction,))
        mappings = None
        if mapped:
            if ft == tt:
                raise SpecError(field + '.columns', 'mapped columns are for a cross-table entry; change a column of one table '
                                                    'with an alter_column op')
            fc, tc, mappings = _parse_mapped_pairs(item['columns'], field + '.columns', direction)
        elif len(fc) != len(tc):
            raise SpecError(field + '.to.columns', 'must list as many columns as from.columns (%d, got %d); columns pair up by position'
                            % (len(fc), len(tc)))
        if len(key_names(fk)) != len(key_names(tk)):
            raise SpecError(field + '.to.key', 'must list as many columns as from.key (%d)' % len(key_names(fk)))
        probe = SyncSpec(i, ft, fk, fc, tt, tk, tc, direction, 'cross', mappings)
        for side, key, cols in (('from', fk, fc), ('to', tk, tc)):
            for j, c in enumerate(cols):
                if c.lower() in [k.lower() for k in key_names(key)]:
                    raise SpecError(probe.column_field(side, j), 'the key column %r cannot be a synced column' % c)
        kind = 'same' if ft == tt else 'cross'
        if kind == 'same':
            if [k.lower() for k in key_names(fk)] != [k.lower() for k in key_names(tk)]:
                raise SpecError(field + '.to.key', 'a same-table sync uses the primary key on both sides (from.key is %r)' % fk)
            lower_from = set(c.lower() for c in fc)
            for j, c in enumerate(tc):
                if c.lower() in lower_from:
                    raise SpecError('%s.to.columns[%d]' % (field, j), 'column %r is on both sides of a same-table sync' % c)
        for j, c in enumerate(tc):
            tkey = (tt, c.lower())
            if tkey in targets:
                raise SpecError(probe.column_field('to', j), 'column %s.%s is already a target of %s' % (tt, c, targets[tkey]))
            targets[tkey] = field
        result.append(SyncSpec(i, ft, fk, fc, tt, tk, tc, direction, kind, mappings))
    return result


def canonical_checksum(data):
    """sha256 hex of the canonical JSON of the raw (YAML-loaded) data."""
    text = json.dumps(data, sort_keys=True, separators=(',', ':'), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def load_migration_data(data):
    """Return (raw mapping, source) from a mapping, a path to a YAML file, or YAML text."""
    source = None
    if isinstance(data, str):
        text = data
        looks_like_path = '\n' not in data and (data.endswith(('.yml', '.yaml')) or os.sep in data)
        path = os.path.expanduser(data)
        if '\n' not in data and os.path.isfile(path):
            source = path
            try:
                with open(path, 'rb') as f:
                    text = f.read().decode('utf-8')
            except (IOError, OSError, UnicodeDecodeError) as exc:
                raise SpecError('migration', 'cannot read %s: %s' % (path, exc))
        elif looks_like_path:
            raise SpecError('migration', 'migration file not found: %s' % data)
        if not HAS_YAML:
            raise SpecError('migration', 'PyYAML is needed to read a migration file; pass the migration as a mapping instead')
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError('migration', 'invalid YAML%s: %s' % (' in %s' % source if source else '', exc))
    return data, source


def parse_migration(data, source=None):
    """Validate a migration (mapping, YAML file path or YAML text) and return a :class:`Migration`."""
    data, loaded_from = load_migration_data(data)
    source = source or loaded_from
    _mapping(data, '', required=('id', 'description'), optional=('expand', 'sync', 'contract'))
    mid = data['id']
    if isinstance(mid, bool) or not isinstance(mid, int) or mid < 1:
        raise SpecError('id', 'must be a positive integer, got %r' % (mid,))
    if mid > 2 ** 63 - 1:
        raise SpecError('id', 'too large')
    description = _str(data['description'], 'description', max_len=500)
    expand = _parse_ops(data.get('expand'), 'expand')
    contract = _parse_ops(data.get('contract'), 'contract')
    _check_op_sequence(expand, 'expand')
    _check_op_sequence(contract, 'contract')
    sync = _parse_sync(data.get('sync'))
    groups = _alter_column_groups(expand)
    sync.extend(_alter_column_syncs(groups, len(sync)))
    contract.extend(_alter_column_contract(groups, contract))
    return Migration(mid, description, expand, sync, contract, canonical_checksum(data), source)
