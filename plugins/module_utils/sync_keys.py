# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Key ranges over a sync entry's source key, shared by the backfill, the verifier and the checkpoint (no Ansible import).

The backfill copies and the verifier checks the source table in ranges ``(lo, hi]`` of its primary key, found by
walking the key index (:func:`nth_key_after`); the checkpoint stores the last key copied so that a resumed run
starts right after it, and stores it as JSON so that an integer keeps its exact value (:func:`encode_key`).

A key is one column or several (a composite primary key): ``key_sql`` is then a tuple of column expressions and a
key value a tuple, ordered as the index orders it.  A range bound on a composite key is written out as
``a > x OR (a = x AND b > y)`` rather than the row comparison ``(a, b) > (x, y)``, which MariaDB does not turn into
an index range.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json


def key_parts(key_sql):
    """The column expressions of a key: one for a single-column key, several for a composite one."""
    return list(key_sql) if isinstance(key_sql, (list, tuple)) else [key_sql]


def key_select(key_sql):
    """``a, b``: the key's columns for a select list or an ORDER BY."""
    return ', '.join(key_parts(key_sql))


def key_order(key_sql, descending=False):
    return ', '.join('%s%s' % (k, ' DESC' if descending else '') for k in key_parts(key_sql))


def key_value(row, key_sql, offset=0):
    """The key value a row holds from ``offset`` on: a scalar, or a tuple for a composite key."""
    if isinstance(key_sql, (list, tuple)):
        return tuple(row[offset:offset + len(key_sql)])
    return row[offset]


def key_equals(left, right):
    """``l1 = r1 AND l2 = r2`` for two keys of as many columns (column or value expressions)."""
    return ' AND '.join('%s = %s' % (a, b) for a, b in zip(key_parts(left), key_parts(right)))


def _bound(parts, value, op, last_op):
    """``a op x OR (a = x AND b last_op y)``: a strict or inclusive lexicographic bound and its args."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(parts) == 1:
        return '%s %s %%s' % (parts[0], last_op), values
    terms, args = [], []
    for i in range(len(parts)):
        eq = ['%s = %%s' % parts[j] for j in range(i)]
        cmp_op = last_op if i == len(parts) - 1 else op
        terms.append('(%s)' % ' AND '.join(eq + ['%s %s %%s' % (parts[i], cmp_op)]))
        args.extend(values[:i] + [values[i]])
    return '(%s)' % ' OR '.join(terms), args


def range_condition(key_sql, lo, hi):
    """``key > lo AND key <= hi`` (either side open when None) and its args."""
    parts = key_parts(key_sql)
    conds, args = [], []
    if lo is not None:
        cond, more = _bound(parts, lo, '>', '>')
        conds.append(cond)
        args.extend(more)
    if hi is not None:
        cond, more = _bound(parts, hi, '<', '<=')
        conds.append(cond)
        args.extend(more)
    return (' AND '.join(conds) if conds else '1 = 1'), args


def nth_key_after(cur, table_sql, key_sql, lo, hi, n):
    """The ``n``-th key after ``lo`` (not beyond ``hi``) in key order, or None when fewer than ``n`` keys are left."""
    cond, args = range_condition(key_sql, lo, hi)
    cur.execute('SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT 1 OFFSET %d'
                % (key_select(key_sql), table_sql, cond, key_order(key_sql), max(0, n - 1)), args)
    row = cur.fetchone()
    return key_value(row, key_sql) if row else None


def last_key(cur, table_sql, key_sql):
    """The largest key of the table (None when it is empty)."""
    cur.execute('SELECT %s FROM %s ORDER BY %s LIMIT 1' % (key_select(key_sql), table_sql, key_order(key_sql, descending=True)))
    row = cur.fetchone()
    return key_value(row, key_sql) if row else None


def ranges(conn, table_sql, key_sql, rows_per_range):
    """Yield (lo, hi) ranges of about ``rows_per_range`` rows covering the whole key space (first lo and last hi open)."""
    lo = None
    with conn.cursor() as cur:
        while True:
            hi = nth_key_after(cur, table_sql, key_sql, lo, None, rows_per_range)
            yield lo, hi
            if hi is None:
                return
            lo = hi


def _encode_part(value):
    if isinstance(value, bytes):
        return {'hex': value.hex()}
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return value
    return {'str': str(value)}


def _decode_part(value):
    if isinstance(value, dict):
        if 'hex' in value:
            return bytes.fromhex(value['hex'])
        return value['str']
    return value


def encode_key(value):
    """A key as the checkpoint stores it: JSON, so integers keep their exact value (no float round trip); a composite
    key as ``{"key": [parts]}``."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return json.dumps({'key': [_encode_part(v) for v in value]})
    return json.dumps(_encode_part(value))


def decode_key(text):
    if text is None:
        return None
    value = json.loads(text)
    if isinstance(value, dict) and 'key' in value:
        return tuple(_decode_part(v) for v in value['key'])
    return _decode_part(value)
