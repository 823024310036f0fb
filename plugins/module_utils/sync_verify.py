# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify a sync entry by chunked checksums of the mapped columns on both sides (no Ansible import).

Each key range of the source's primary key is checked inside one consistent snapshot
(``START TRANSACTION WITH CONSISTENT SNAPSHOT``): the triggers write both shapes in the
application's transaction, so a snapshot sees both sides equal even while the application writes.
A range whose count or checksum differs is drilled down key by key in the same snapshot.

Row hash: the first 60 bits of ``MD5`` of the key and the mapped values, each rendered charset-
and collation-independently (strings as utf8mb4 hex, NULL distinct from every value); a range's
checksum is the sum of its row hashes plus the row count.  Cross-table: an old row whose mapped
columns are all NULL must have *no* new row.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import quote_identifier as q
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_types import BINARY_DATA_TYPES, STRING_DATA_TYPES, same_value, type_kind
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_keys import (
    key_order, key_parts, key_select, key_value, range_condition, ranges)

MAX_KEYS = 10


class SyncMismatch(ZdtError):
    """Verification found differing rows; ``result`` holds {rows_checked, mismatches, keys}."""

    def __init__(self, message, result):
        self.result = result
        super(SyncMismatch, self).__init__(message)


def norm_expr(expr, data_type):
    data_type = (data_type or '').lower()
    if data_type in STRING_DATA_TYPES:
        inner = 'HEX(CONVERT(%s USING utf8mb4))' % expr
    elif data_type in BINARY_DATA_TYPES:
        inner = 'HEX(%s)' % expr
    else:
        inner = 'CAST(%s AS CHAR)' % expr
    return "IF(%s IS NULL, 'N', CONCAT('V', %s))" % (expr, inner)


def row_hash(key_expr, key_type, columns, types):
    """``key_expr``/``key_type``: a column and its DATA_TYPE, or tuples of them for a composite key."""
    key_types = key_type if isinstance(key_type, tuple) else (key_type,)
    parts = [norm_expr(k, t) for k, t in zip(key_parts(key_expr), key_types)] + [norm_expr(c, t) for c, t in zip(columns, types)]
    return "CAST(CONV(LEFT(MD5(CONCAT_WS('|', %s)), 15), 16, 10) AS UNSIGNED)" % ', '.join(parts)


class Side(object):
    """One side of a sync entry as the checksums see it: a table, its key, the hash of a row's mapped columns and the
    rows that count (cross-table, old side: those with a mapped column that is not NULL)."""

    def __init__(self, table_sql, key_sql, hash_sql, where=None):
        self.table_sql = table_sql
        self.key_sql = key_sql
        self.hash_sql = hash_sql
        self.where = where

    def _cond(self, lo, hi, keys=None):
        cond, args = range_condition(self.key_sql, lo, hi)
        if self.where:
            cond += ' AND %s' % self.where
        if keys is not None:
            width = len(key_parts(self.key_sql))
            marks = '%s' if width == 1 else '(%s)' % ', '.join(['%s'] * width)
            cond += ' AND %s IN (%s)' % (self.key_sql if width == 1 else '(%s)' % key_select(self.key_sql), ', '.join([marks] * len(keys)))
            args = list(args) + [v for k in keys for v in (k if width > 1 else (k,))]
        return cond, args

    def sums_query(self, lo, hi):
        """(sql, args): the count and the sum of the row hashes of the key range (lo, hi]."""
        cond, args = self._cond(lo, hi)
        return 'SELECT COUNT(*), COALESCE(SUM(%s), 0) FROM %s WHERE %s' % (self.hash_sql, self.table_sql, cond), args

    def hashes_query(self, lo, hi, keys=None):
        """(sql, args): key and row hash of every counted row of (lo, hi], only ``keys`` when given."""
        cond, args = self._cond(lo, hi, keys)
        return 'SELECT %s, %s FROM %s WHERE %s' % (key_select(self.key_sql), self.hash_sql, self.table_sql, cond), args


def sides(plan):
    """The two :class:`Side` objects of a sync entry: its old shape and its new shape."""
    fkey = plan.key_sql('from')
    fcols = [q(c, 'from.columns') for c in plan.from_columns]
    if plan.kind == 'same':
        table = q(plan.from_table, 'from.table')
        tcols = [q(c, 'to.columns') for c in plan.to_columns]
        return (Side(table, fkey, row_hash(fkey, plan.key_type, fcols, plan.from_types)),
                Side(table, fkey, row_hash(fkey, plan.key_type, tcols, plan.to_types)))
    tkey = plan.key_sql('to')
    tcols = [q(c, 'to.columns') for c in plan.to_columns]
    return (Side(q(plan.from_table, 'from.table'), fkey, row_hash(fkey, plan.key_type, fcols, plan.from_types), plan.any_not_null()),
            Side(q(plan.to_table, 'to.table'), tkey, row_hash(tkey, plan.key_type, tcols, plan.to_types)))


class Verifier(object):

    def __init__(self, conn, plan, chunk_rows=20000):
        self.conn = conn
        self.plan = plan
        self.chunk_rows = max(10, int(chunk_rows))

    def run(self):
        with self.conn.cursor() as cur:
            cur.execute('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ')
            cur.execute("SET SESSION time_zone = '+00:00'")
        if self.plan.kind == 'same':
            result = self._same()
        else:
            result = self._cross()
        if result['mismatches']:
            raise SyncMismatch('verify of %s (%s -> %s) found %d mismatching row(s); first keys: %s'
                               % (self.plan.field, self.plan.from_table, self.plan.to_table, result['mismatches'],
                                  ', '.join(repr(k) for k in result['keys'])), result)
        return result

    def _cross(self):
        p = self.plan
        fsql, tsql = q(p.from_table, 'from.table'), q(p.to_table, 'to.table')
        fkey, tkey = p.key_sql('from'), p.key_sql('to')
        tcols = [q(c, 'to.columns') for c in p.to_columns]
        src_hash = row_hash(fkey, p.key_type, p.source_values(None), p.source_types())
        dst_hash = row_hash(tkey, p.key_type, tcols, p.source_types() if p.mapped is not None else p.to_types)
        # mapped pairs: up(down(x)) need not be x (LOWER), so a row also matches when the old columns are down of the new row
        src_back = dst_back = 'NULL'
        if p.mapped is not None:
            back = [m for m in p.mapped if m.writes_back]
            if back:
                src_back = row_hash(fkey, p.key_type, [q(m.from_column, 'from.columns') for m in back], [m.from_type for m in back])
                dst_back = row_hash(tkey, p.key_type, [m.down_sql(None) for m in back], [m.from_type for m in back])
        anynn = p.any_not_null()
        checked, mismatches, keys = 0, 0, []
        for lo, hi in list(ranges(self.conn, fsql, fkey, self.chunk_rows)):
            scond, sargs = range_condition(fkey, lo, hi)
            tcond, targs = range_condition(tkey, lo, hi)
            with self.conn.cursor() as cur:
                cur.execute('START TRANSACTION WITH CONSISTENT SNAPSHOT')
                try:
                    cur.execute('SELECT COUNT(*), COALESCE(SUM(%s), 0), COALESCE(SUM(IF(%s, %s, 0)), 0) FROM %s WHERE %s'
                                % (anynn, anynn, src_hash, fsql, scond), sargs)
                    total, s_rows, s_sum = cur.fetchone()
                    cur.execute('SELECT COUNT(*), COALESCE(SUM(%s), 0) FROM %s WHERE %s' % (dst_hash, tsql, tcond), targs)
                    t_rows, t_sum = cur.fetchone()
                    checked += int(total)
                    if int(s_rows) == int(t_rows) and int(s_sum) == int(t_sum):
                        continue
                    width = len(key_parts(fkey))
                    cur.execute('SELECT %s, %s, %s FROM %s WHERE %s AND %s' % (key_select(fkey), src_hash, src_back, fsql, scond, anynn), sargs)
                    src = dict((key_value(r, fkey), r[width:]) for r in cur.fetchall())
                    cur.execute('SELECT %s, %s, %s FROM %s WHERE %s' % (key_select(tkey), dst_hash, dst_back, tsql, tcond), targs)
                    dst = dict((key_value(r, tkey), r[width:]) for r in cur.fetchall())
                finally:
                    cur.execute('COMMIT')

            def matches(k):
                a, b = src.get(k), dst.get(k)
                return a is not None and b is not None and (a[0] == b[0] or (a[1] is not None and a[1] == b[1]))
            diff = sorted((k for k in set(src) | set(dst) if not matches(k)), key=lambda k: (str(type(k)), k))
            mismatches += len(diff)
            keys.extend(diff[:MAX_KEYS - len(keys)])
        return dict(rows_checked=checked, mismatches=mismatches, keys=keys)

    def _same(self):
        p = self.plan
        tsql, key = q(p.from_table, 'from.table'), p.key_sql('from')
        if p.mapped is not None:
            # up(down(x)) need not be x (LOWER): a row is in sync when either direction explains it
            return self._same_rows(tsql, key, p.mapped_verified())
        same = ' AND '.join('(%s)' % same_value(q(f, 'from.columns'), q(t, 'to.columns'), type_kind(ft) if type_kind(ft) == type_kind(tt) else 'other')
                            for f, t, ft, tt in p.pairs())
        return self._same_rows(tsql, key, same)

    def _same_rows(self, tsql, key, same):
        checked, mismatches, keys = 0, 0, []
        for lo, hi in list(ranges(self.conn, tsql, key, self.chunk_rows)):
            cond, args = range_condition(key, lo, hi)
            with self.conn.cursor() as cur:
                cur.execute('SELECT COUNT(*), COALESCE(SUM(NOT (%s)), 0) FROM %s WHERE %s' % (same, tsql, cond), args)
                total, bad = cur.fetchone()
                checked += int(total)
                if int(bad):
                    mismatches += int(bad)
                    if len(keys) < MAX_KEYS:
                        cur.execute('SELECT %s FROM %s WHERE %s AND NOT (%s) ORDER BY %s LIMIT %d'
                                    % (key_select(key), tsql, cond, same, key_order(key), MAX_KEYS - len(keys)), args)
                        keys.extend(key_value(r, key) for r in cur.fetchall())
        return dict(rows_checked=checked, mismatches=mismatches, keys=keys)
