# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's type vocabulary: the column-type grammar of migration files and the live data-type families.

Two views of a type, kept apart by their names:

* the *grammar* a migration file's ``type`` is parsed with (:func:`parse_type` -> :class:`ColumnType`, upper-case
  names such as ``VARCHAR``; ``CHARSET_TYPES`` are those that take a character set); SQL is rendered from the
  validated parts, never from the user's text;
* the *data types* information_schema reports for live columns (lower case ``DATA_TYPE``), grouped into families
  (``STRING_DATA_TYPES``, ``BINARY_DATA_TYPES``, ...) that decide how a value is compared exactly
  (:func:`same_value`), rendered as a literal, and whether one column can hold every value of another
  (:func:`capacity_problem`).

No Ansible import.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
from collections import namedtuple

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import literal_text_problem, sql_string_literal

# --------------------------------------------------------------------------------------------
# The column-type grammar of migration files
# --------------------------------------------------------------------------------------------

INTEGER_TYPES = ('TINYINT', 'SMALLINT', 'MEDIUMINT', 'INT', 'INTEGER', 'BIGINT')
TEXT_TYPES = ('TINYTEXT', 'TEXT', 'MEDIUMTEXT', 'LONGTEXT')
BLOB_TYPES = ('TINYBLOB', 'BLOB', 'MEDIUMBLOB', 'LONGBLOB')
TEMPORAL_FSP_TYPES = ('DATETIME', 'TIMESTAMP', 'TIME')
SIMPLE_TYPES = ('FLOAT', 'DOUBLE', 'DATE', 'BOOLEAN', 'JSON') + TEXT_TYPES + BLOB_TYPES
CHARSET_TYPES = ('CHAR', 'VARCHAR', 'ENUM') + TEXT_TYPES   # the types that take CHARACTER SET / COLLATE
NO_DEFAULT_TYPES = TEXT_TYPES + BLOB_TYPES + ('JSON',)     # MySQL 8.0 accepts no literal default here

_TYPE_HEAD_RE = re.compile(r'^\s*([A-Za-z]+)\s*(.*?)\s*\Z', re.S)
_ARGS_RE = re.compile(r'^\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)\s*(.*?)\Z', re.S)
_ENUM_VALUE_RE = re.compile(r"\s*'((?:[^']|'')*)'\s*(,|\))", re.S)


class ColumnType(namedtuple('ColumnType', 'name length scale unsigned values')):
    """A validated column type.

    ``name`` is the canonical upper-case type name; ``length`` is the length / precision /
    fractional-seconds precision or None; ``scale`` the DECIMAL scale or None; ``unsigned`` a bool;
    ``values`` the ENUM values (tuple) or None.
    """

    __slots__ = ()

    @property
    def is_integer(self):
        return self.name in INTEGER_TYPES

    @property
    def takes_charset(self):
        return self.name in CHARSET_TYPES

    @property
    def is_temporal(self):
        return self.name in ('DATE',) + TEMPORAL_FSP_TYPES

    def sql(self):
        """Render the type from its validated parts."""
        if self.name == 'ENUM':
            return 'ENUM(%s)' % ', '.join(sql_string_literal(v) for v in self.values)
        text = self.name
        if self.name == 'DECIMAL':
            if self.length is not None:
                text += '(%d,%d)' % (self.length, self.scale or 0)
        elif self.length is not None:
            text += '(%d)' % self.length
        if self.unsigned:
            text += ' UNSIGNED'
        return text

    def __str__(self):
        return self.sql()


def parse_type(text, field='type'):
    """Parse a type string such as ``VARCHAR(100)`` or ``INT UNSIGNED`` into a :class:`ColumnType`."""
    if not isinstance(text, str):
        raise SpecError(field, 'must be a string such as INT or VARCHAR(100), got %s' % type(text).__name__)
    m = _TYPE_HEAD_RE.match(text)
    if not m:
        raise SpecError(field, 'invalid column type %r' % (text,))
    name, rest = m.group(1).upper(), m.group(2)
    if name == 'INTEGER':
        name = 'INT'
    elif name == 'BOOL':
        name = 'BOOLEAN'
    elif name == 'NUMERIC':
        name = 'DECIMAL'

    def bad(why):
        return SpecError(field, 'invalid column type %r: %s' % (text, why))

    if name == 'ENUM':
        return _parse_enum(rest, bad)

    length = scale = None
    unsigned = False
    if rest.startswith('('):
        am = _ARGS_RE.match(rest)
        if not am:
            raise bad('malformed parameters')
        length = int(am.group(1))
        scale = int(am.group(2)) if am.group(2) is not None else None
        rest = am.group(3)
    words = rest.upper().split()
    if words == ['UNSIGNED']:
        unsigned = True
    elif words:
        raise bad('unexpected %r' % (rest,))

    if name in INTEGER_TYPES:
        if scale is not None:
            raise bad('integer types take at most a display width')
        if length is not None and not 1 <= length <= 255:
            raise bad('display width must be 1..255')
    elif name == 'DECIMAL':
        if unsigned:
            raise bad('UNSIGNED is not supported for DECIMAL')
        if length is None:
            length, scale = 10, 0
        if scale is None:
            scale = 0
        if not 1 <= length <= 65:
            raise bad('precision must be 1..65')
        if not 0 <= scale <= 30 or scale > length:
            raise bad('scale must be 0..30 and not above the precision')
    elif name in ('CHAR', 'VARCHAR'):
        if unsigned or scale is not None:
            raise bad('%s takes one length' % name)
        if length is None:
            if name == 'VARCHAR':
                raise bad('VARCHAR needs a length, e.g. VARCHAR(255)')
            length = 1
        limit = 255 if name == 'CHAR' else 65535
        if not (0 if name == 'CHAR' else 1) <= length <= limit:
            raise bad('length must be at most %d' % limit)
    elif name in TEMPORAL_FSP_TYPES:
        if unsigned or scale is not None:
            raise bad('%s takes only a fractional-seconds precision' % name)
        if length is not None and not 0 <= length <= 6:
            raise bad('fractional-seconds precision must be 0..6')
    elif name in SIMPLE_TYPES:
        if length is not None or scale is not None or unsigned:
            raise bad('%s takes no parameters' % name)
    else:
        raise bad('unknown type %s (allowed: integer types, DECIMAL, FLOAT, DOUBLE, CHAR, VARCHAR, TEXT/BLOB families, '
                  'DATE, TIME, DATETIME, TIMESTAMP, BOOLEAN, JSON, ENUM)' % name)
    if unsigned and name not in INTEGER_TYPES:
        raise bad('UNSIGNED only applies to integer types')
    return ColumnType(name, length, scale, unsigned, None)


def _parse_enum(rest, bad):
    if not rest.startswith('('):
        raise bad("ENUM needs a value list, e.g. ENUM('a', 'b')")
    pos = 1
    values = []
    while True:
        m = _ENUM_VALUE_RE.match(rest, pos)
        if not m:
            raise bad("ENUM values must be single-quoted strings separated by commas")
        value = m.group(1).replace("''", "'")
        _check_string_value(value, bad)
        if len(value) > 255:
            raise bad('ENUM value longer than 255 characters')
        values.append(value)
        pos = m.end()
        if m.group(2) == ')':
            break
    if rest[pos:].strip():
        raise bad('unexpected %r after the value list' % rest[pos:].strip())
    if len(set(v.lower() for v in values)) != len(values):
        raise bad('duplicate ENUM value')
    return ColumnType('ENUM', None, None, False, tuple(values))


def _check_string_value(value, bad):
    problem = literal_text_problem(value)
    if problem:
        raise bad(problem)


# --------------------------------------------------------------------------------------------
# Live data types (information_schema.COLUMNS.DATA_TYPE, lower case)
# --------------------------------------------------------------------------------------------

STRING_DATA_TYPES = frozenset(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'enum', 'set', 'json'])
BINARY_DATA_TYPES = frozenset(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob'])
NUMERIC_DATA_TYPES = frozenset(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint', 'decimal', 'numeric', 'year'])
TEMPORAL_DATA_TYPES = frozenset(['date', 'time', 'datetime', 'timestamp'])
# Types whose value survives a round trip through a SQL literal built by the server (see sync_backfill.py).
LITERAL_SAFE_DATA_TYPES = STRING_DATA_TYPES | BINARY_DATA_TYPES | NUMERIC_DATA_TYPES | TEMPORAL_DATA_TYPES


def type_kind(data_type):
    data_type = (data_type or '').lower()
    if data_type in STRING_DATA_TYPES:
        return 'string'
    if data_type in BINARY_DATA_TYPES:
        return 'binary'
    return 'other'


def same_value(x, y, kind):
    """SQL true when ``x`` and ``y`` hold the same value, NULL-safe and exact.

    Strings compare as utf8mb4 bytes: a collation-equal change ('a' -> 'A', trailing spaces)
    is a change.  Other types use ``<=>``.
    """
    if kind == 'string':
        return 'CAST(CONVERT(%s USING utf8mb4) AS BINARY) <=> CAST(CONVERT(%s USING utf8mb4) AS BINARY)' % (x, y)
    if kind == 'binary':
        return 'CAST(%s AS BINARY) <=> CAST(%s AS BINARY)' % (x, y)
    return '%s <=> %s' % (x, y)


def changed_kind(data_type):
    """Comparison kind for OLD.col vs NEW.col of the *same* column: both sides have the column's character
    set, so comparing their bytes is exact and the CONVERT of :func:`same_value`'s 'string' kind is not needed."""
    return 'binary' if type_kind(data_type) in ('string', 'binary') else 'other'


# Integer types by the values they hold: (signed range, unsigned range) as (low, high).
_INT_BITS = {'tinyint': 8, 'smallint': 16, 'mediumint': 24, 'int': 32, 'integer': 32, 'bigint': 64}


def _int_range(col):
    bits = _INT_BITS[col['type']]
    if 'unsigned' in col.get('column_type', ''):
        return 0, 2 ** bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def capacity_problem(src, dst):
    """Why column ``dst`` cannot hold every value of column ``src`` (None when it can).

    The two-version window needs every write of either version to fit the other shape: the sync checks this
    up front, so a narrower column fails here, not as the application's failed (or, without strict mode,
    silently truncated) writes.  Columns are dicts as read by :func:`mysql_inspect.columns`.
    """
    st, dt = src['type'], dst['type']
    if st in _INT_BITS and dt in _INT_BITS:
        (slo, shi), (dlo, dhi) = _int_range(src), _int_range(dst)
        return None if dlo <= slo and shi <= dhi else '%s cannot hold every %s value' % (dst['column_type'], src['column_type'])
    if st in ('decimal', 'numeric') and dt in ('decimal', 'numeric'):
        sp, ss, dp, ds = (int(src['precision'] or 0), int(src['scale'] or 0), int(dst['precision'] or 0), int(dst['scale'] or 0))
        if ds >= ss and dp - ds >= sp - ss and ('unsigned' not in dst['column_type'] or 'unsigned' in src['column_type']):
            return None
        return '%s cannot hold every %s value' % (dst['column_type'], src['column_type'])
    if st in ('float', 'double') and dt in ('float', 'double'):
        return None if (st, dt) != ('double', 'float') else 'float cannot hold every double value'
    if st in ('enum', 'set') or dt in ('enum', 'set'):
        return None if src['column_type'] == dst['column_type'] else '%s differs from %s' % (dst['column_type'], src['column_type'])
    if type_kind(st) == type_kind(dt) and type_kind(st) in ('string', 'binary'):
        if st != 'json' and int(dst['length'] or 0) < int(src['length'] or 0):
            return '%s is shorter than %s' % (dst['column_type'], src['column_type'])
        if type_kind(st) == 'string' and src.get('charset') != dst.get('charset') and dst.get('charset') != 'utf8mb4':
            return 'character set %s cannot hold every %s character' % (dst.get('charset'), src.get('charset'))
        return None
    if st == dt and st in TEMPORAL_DATA_TYPES:
        return None if int(dst['fsp'] or 0) >= int(src['fsp'] or 0) else '%s has fewer fractional digits than %s' % (
            dst['column_type'], src['column_type'])
    if st == dt == 'year' or (st == dt and st in ('bit', 'boolean')):
        return None if dst['column_type'] == src['column_type'] else '%s differs from %s' % (dst['column_type'], src['column_type'])
    return 'type %s is not %s (the values would be converted)' % (dst['column_type'], src['column_type'])
