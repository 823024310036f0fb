# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Key ranges over a sync entry's source key, shared by the backfill, the verifier and the checkpoint (no Ansible import).

The backfill copies and the verifier checks the source table in ranges ``(lo, hi]`` of its primary key, found by
walking the key index (:func:`nth_key_after`); the checkpoint stores the last key copied so that a resumed run
starts right after it, and stores it as JSON so that an integer keeps its exact value (:func:`encode_key`).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json


def range_condition(key_sql, lo, hi):
    """``key > lo AND key <= hi`` (either side open when None) and its args."""
    conds, args = [], []
    if lo is not None:
        conds.append('%s > %%s' % key_sql)
        args.append(lo)
    if hi is not None:
        conds.append('%s <= %%s' % key_sql)
        args.append(hi)
    return (' AND '.join(conds) if conds else '1 = 1'), args


def nth_key_after(cur, table_sql, key_sql, lo, hi, n):
    """The ``n``-th key after ``lo`` (not beyond ``hi``) in key order, or None when fewer than ``n`` keys are left."""
    cond, args = range_condition(key_sql, lo, hi)
    cur.execute('SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT 1 OFFSET %d'
                % (key_sql, table_sql, cond, key_sql, max(0, n - 1)), args)
    row = cur.fetchone()
    return row[0] if row else None


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


def encode_key(value):
    """A key as the checkpoint stores it: JSON, so integers keep their exact value (no float round trip)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return json.dumps({'hex': value.hex()})
    if isinstance(value, (int, str)):
        return json.dumps(value)
    return json.dumps({'str': str(value)})


def decode_key(text):
    if text is None:
        return None
    value = json.loads(text)
    if isinstance(value, dict):
        if 'hex' in value:
            return bytes.fromhex(value['hex'])
        return value['str']
    return value
