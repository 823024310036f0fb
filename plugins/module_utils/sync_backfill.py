# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Chunked backfill that is exact under concurrent writes (no Ansible import).

Why it is exact (cross-table, triggers already in place):

* Every slice (chunks are made of slices of ~20 ms) is one transaction that first *locks* the
  existing source rows of its key range (``LOCK IN SHARE MODE``, READ COMMITTED: record locks, no
  gap locks), so concurrent updates and deletes of them wait, reads their latest committed values,
  upserts exactly those values into the new table, advances the checkpoint and commits.  A row
  inserted into the range meanwhile is not locked: its insert trigger writes it (and if the slice
  read it, both wrote the same committed value).
* A writer that committed before the chunk's read already ran the upsert trigger with the value
  the chunk reads; a writer that comes after the commit runs its trigger after the chunk, so the
  trigger's value (the newer one) is the last write.  The copy can therefore never overwrite a
  newer trigger write, and never resurrect a deleted row (the row is locked or already gone).
* The copy upserts instead of ``INSERT IGNORE``: nothing is silently skipped (IGNORE hides every
  duplicate, including a primary-key collision), and every warning fails the chunk.
* Rows inserted after the triggers exist are kept by the triggers; the copy covers keys up to the
  maximum key seen right after the triggers were created (``max_key``).
* The copy skips foreign key checks when they can neither fail nor act
  (:func:`foreign_key_checks_redundant`): the parent of every copied row is the source row the slice
  holds a shared lock on.

AUTO-INC: with InnoDB's default ``innodb_autoinc_lock_mode=1`` any ``INSERT … SELECT`` into a
table with an AUTO_INCREMENT column holds the table-level AUTO-INC lock for the whole statement,
even when no value is generated, which stalls every trigger insert behind the chunk (measured
here: ~2 s stall behind a 2 s chunk).  So for such targets the chunk has the *server* build a
multi-row ``INSERT … VALUES`` text from the locked rows (``GROUP_CONCAT`` of quoted/hex literals)
and runs it as a prepared statement: a "simple insert" that takes only the AUTO-INC mutex.  The new
table's own key is never given (the new version's ids cannot collide).  Columns whose values do
not round-trip through a literal (FLOAT, DOUBLE, BIT, spatial) fall back to ``INSERT … SELECT``.

Strategy, chosen at run time from the live schema and the server (:func:`choose_strategy`):

* ``select`` when the target has no AUTO_INCREMENT column: one locking ``INSERT … SELECT … LOCK IN
  SHARE MODE … ON DUPLICATE KEY UPDATE`` per slice, no literal round trip (the fast path).
* ``insert`` when it has one and the server runs ``innodb_autoinc_lock_mode=2`` (MySQL 8's default,
  Galera's requirement), unless the new table held rows before the triggers existed: per slice, the
  keys the new table already holds in the range are read, then one plain locking ``INSERT … SELECT``
  copies the other rows (:meth:`Backfill._insert_chunk`).  The rows already there were written by
  the triggers, so they hold their old row's latest values; the statement never meets an existing
  row, and a row a trigger writes between the two statements makes the insert fail with a duplicate
  key, after which the slice is rolled back and run again.  Lock mode 2 takes no table AUTO-INC lock,
  so this copy runs at close to a bare ``INSERT … SELECT`` without stalling the application.
* ``values`` otherwise when it has one (lock mode 0 or 1, or rows there before the sync).

Why not ``select`` into a table with an AUTO_INCREMENT column:

- under lock mode 1 (MariaDB's default) an ``INSERT … SELECT`` holds the table AUTO-INC lock for the
  whole statement even when it supplies the AUTO_INCREMENT value itself (measured on MariaDB 10.11: a
  concurrent single-row insert waited 2.9 s behind a 2.9 s copy), so "take the target key from the
  source key" does not avoid it.  Forcing ``select`` (4 ms slices) onto the seed's AUTO_INCREMENT
  target copied faster in one A/B pair of benchmark runs (95k vs 76k rows/s) but the application's
  trigger inserts queued on the AUTO-INC lock (p50 0.88 vs 0.40 ms, p99 5.13 vs 1.98 ms), bulk id
  reservation used 1.42M ids for 967k rows, and writers got error 1467 ("Failed to read
  auto-increment value from storage engine");
- under lock mode 2 it is not exact (measured on MariaDB 10.11.19): an ``INSERT … SELECT … ON
  DUPLICATE KEY UPDATE`` that meets rows already in the target (the triggers wrote them) while other
  sessions insert writes some of its rows onto ids those sessions were given, so the upsert updates
  *their* rows, without an error or a warning.  The race tests forced onto ``select`` failed in 13 of
  14 runs (other users' rows overwritten, copied rows missing); in isolation (200k rows, a third of
  them already in the target, two single-row inserters) 38,422 and 32,722 copied rows were missing
  and 33 inserted rows held copied values (2 runs), while the same copy with no rows already present
  (1 run) and the ``values`` copy with them (2 runs) lost nothing (docs/measurements.md).  That is why
  the ``insert`` copy leaves existing rows out instead of merging them.

The ``values`` copy costs the literal round trip (the server builds the text and parses it again;
benchmarks/bench_backfill.py --scenario lock-modes prints what each copy costs against a bare copy
under both lock modes).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import time

from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_state
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_errors import (
    ER_DUP_ENTRY, WARN_DEPRECATED_SYNTAX, WARN_GROUP_CONCAT_CUT, backoff_delay, error_code, is_lock_error)
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_inspect import (
    autoinc_lock_mode, foreign_keys, referencing_foreign_keys, triggers)
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import quote_identifier as q
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_types import (
    BINARY_DATA_TYPES, LITERAL_SAFE_DATA_TYPES, NUMERIC_DATA_TYPES, STRING_DATA_TYPES, same_value, type_kind)
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_keys import (
    encode_key, key_equals, key_parts, key_select, last_key, nth_key_after, range_condition)
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_throttle import Throttler

MIN_CHUNK = 10
MAX_CHUNK = 1000000
MAX_SLICE = 20000
# Slice length: an application write to a row being copied waits at most one slice.  Measured with the
# benchmark's 1000 writes/s app writer, 0.05 s slices copied no faster than 0.02 s (53k vs 56k, 33k vs 35k
# rows/s, same runs) but the app's p99 rose from 3.3-3.7 ms to 5.6-6.1 ms (max 15 -> 62 ms): keep 0.02 s.
SLICE_TIME = 0.02
SELECT_SLICE_TIME = 0.004
CHUNK_RETRIES = 10
STRATEGIES = ('values', 'select', 'insert')
# The 'insert' strategy names the keys the new table already holds in a slice's range, up to this many.
MAX_EXCLUDED = 1000


class ChunkRetry(Exception):
    """Internal: the chunk must be retried (deadlock, lock wait, GROUP_CONCAT too short)."""


def literal_expr(expr, data_type):
    """SQL expression that renders ``expr`` as a SQL literal text ('NULL' for NULL), exact for its type."""
    data_type = data_type.lower()
    if data_type in STRING_DATA_TYPES:
        # a quoted utf8mb4 literal: exact for every character set that converts to utf8mb4 (the sync checks that the
        # target's holds the source's), and parsed about as fast as an INSERT ... SELECT (hex literals: ~30 % slower,
        # measured here); the backfill session has NO_BACKSLASH_ESCAPES off, so QUOTE's escapes mean what they say
        return "IF(%s IS NULL, 'NULL', CONCAT('_utf8mb4', QUOTE(CONVERT(%s USING utf8mb4))))" % (expr, expr)
    if data_type in BINARY_DATA_TYPES:
        return "IF(%s IS NULL, 'NULL', CONCAT('X''', HEX(%s), ''''))" % (expr, expr)
    if data_type in NUMERIC_DATA_TYPES:
        return "IFNULL(CAST(%s AS CHAR), 'NULL')" % expr
    return "IFNULL(QUOTE(%s), 'NULL')" % expr


def choose_strategy(plan, autoinc_lock_mode=1, cleanup=False):
    """The copy's strategy for an entry (module docstring): ``autoinc_lock_mode`` is the server's, ``cleanup`` whether the
    new table held rows before the triggers existed."""
    if plan.kind == 'same':
        return 'update'
    if not plan.target_autoinc:
        return 'select'
    if int(autoinc_lock_mode) == 2 and not cleanup:
        return 'insert'
    types = list(plan.key_types()) + plan.source_types()
    if all(t in LITERAL_SAFE_DATA_TYPES for t in types):
        return 'values'
    return 'select'


class Backfill(object):
    """Backfill one sync entry with a dedicated connection (the module's connection)."""

    def __init__(self, conn, db, plan, chunk_time=0.5, chunk_size=1000, max_threads_running=25,
                 sleep=time.sleep, clock=time.time, strategy=None, throttler=None):
        self.conn = conn
        self.db = db
        self.plan = plan
        self.chunk_time = float(chunk_time)
        self.chunk_size = max(1, int(chunk_size))
        self.sleep = sleep
        self.clock = clock
        # what may pause the copy between chunks (sync_throttle); by default only the primary's Threads_running
        self.throttler = throttler or Throttler(conn, plan.migration_id, plan.index, max_threads_running=max_threads_running,
                                                sleep=sleep, clock=clock)
        self.forced_strategy = strategy if strategy in STRATEGIES and plan.kind == 'cross' else None
        self.choose(1, False)
        self.key_sql = plan.key_sql('from')      # a quoted column, or a tuple of them (composite key)
        self.from_sql = q(plan.from_table, 'from.table')
        self.to_sql = q(plan.to_table, 'to.table')
        self.execute_immediate = False
        self.fk_checks_off = False
        self.fk_checks_before = 1
        self.prepared = False
        self.max_chunk_seconds = 0.0
        self.max_slice_seconds = 0.0
        self.last_slice_seconds = 0.0
        self.retries = 0
        self.slice_rows = max(MIN_CHUNK, min(MAX_SLICE, self.chunk_size // 2 or MIN_CHUNK))

    def choose(self, lock_mode, cleanup):
        """Set the strategy (the forced one, if any) and the slice length that goes with it."""
        self.strategy = self.forced_strategy or choose_strategy(self.plan, lock_mode, cleanup)
        # Under innodb_autoinc_lock_mode 0 or 1 an INSERT ... SELECT into a table with an AUTO_INCREMENT column holds the
        # table-level AUTO-INC lock for the whole statement: keep such slices very short.
        self.slice_time = SELECT_SLICE_TIME if (self.strategy == 'select' and self.plan.target_autoinc) else SLICE_TIME

    # ---------------------------------------------------------------- helpers

    def _exec(self, cur, sql, args=None):
        cur.execute(sql, args)
        return cur

    def _check_warnings(self, cur, what):
        count = getattr(getattr(cur, '_result', None), 'warning_count', None)
        if count == 0:
            return
        cur.execute('SHOW WARNINGS')
        # a deprecated-syntax note (MySQL 8.0.20+ on VALUES() in ON DUPLICATE KEY UPDATE) says nothing about the data
        warnings = [w for w in cur.fetchall() if int(w[1]) != WARN_DEPRECATED_SYNTAX]
        if not warnings:
            return
        if any(int(w[1]) == WARN_GROUP_CONCAT_CUT for w in warnings):
            raise ChunkRetry('group_concat')
        text = '; '.join('%s %s: %s' % (w[0], w[1], w[2]) for w in warnings[:5])
        raise DatabaseError('%s of %s: the server reported warnings, the chunk was rolled back: %s' % (what, self.plan.field, text))

    def session_setup(self):
        with self.conn.cursor() as cur:
            # READ COMMITTED + LOCK IN SHARE MODE: every existing source row of the slice is S-locked until
            # commit (what exactness needs), but no gap / next-key locks: rows inserted meanwhile are the
            # triggers' business, and gap locks only cost the application waits and deadlocks.
            cur.execute('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED')
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute('SET SESSION innodb_lock_wait_timeout = 10')
            cur.execute('SET SESSION group_concat_max_len = GREATEST(@@max_allowed_packet, 1048576)')
            # QUOTE() escapes with backslashes: they must be escapes in the statements this session builds
            cur.execute('SELECT @@SESSION.sql_mode')
            modes = [m for m in (cur.fetchone()[0] or '').split(',') if m and m.upper() != 'NO_BACKSLASH_ESCAPES']
            cur.execute('SET SESSION sql_mode = %s', (','.join(modes),))
            cur.execute('SET %s = 1' % self.plan.copy_guard)
            cur.execute('SELECT @@SESSION.foreign_key_checks')
            self.fk_checks_before = int(cur.fetchone()[0])
            self.fk_checks_off = bool(self.fk_checks_before) and foreign_key_checks_redundant(self.conn, self.db, self.plan)
            if self.fk_checks_off:
                cur.execute('SET SESSION foreign_key_checks = 0')
            cur.execute('SELECT VERSION()')
            self.execute_immediate = 'mariadb' in str(cur.fetchone()[0]).lower()

    def session_teardown(self):
        with self.conn.cursor() as cur:
            cur.execute('SET %s = NULL, @zdt_backfill_sql = NULL' % self.plan.copy_guard)
            if self.fk_checks_off:
                cur.execute('SET SESSION foreign_key_checks = %s', (self.fk_checks_before,))
            if self.prepared:
                try:
                    cur.execute('DEALLOCATE PREPARE zdt_backfill_stmt')
                except Exception:  # pylint: disable=broad-except  # never prepared (no rows)
                    pass

    def max_key(self):
        with self.conn.cursor() as cur:
            return last_key(cur, self.from_sql, self.key_sql)

    def count_upto(self, max_key):
        if max_key is None:
            return 0
        with self.conn.cursor() as cur:
            cond, args = range_condition(self.key_sql, None, max_key)
            cur.execute('SELECT COUNT(*) FROM %s WHERE %s' % (self.from_sql, cond), args)
            return int(cur.fetchone()[0])

    def boundary(self, lo, max_key, n):
        with self.conn.cursor() as cur:
            return nth_key_after(cur, self.from_sql, self.key_sql, lo, max_key, n)

    # ---------------------------------------------------------------- chunk bodies (inside a transaction)

    def _values_chunk(self, cur, lo, hi):
        plan = self.plan
        cond, args = range_condition(self.key_sql, lo, hi)
        items = [literal_expr(k, t) for k, t in zip(key_parts(self.key_sql), plan.key_types())]
        items.extend(literal_expr(v, t) for v, t in zip(plan.source_values(None), plan.source_types()))
        row_text = "CONCAT('(', %s, ')')" % ", ',', ".join(items)
        anynn = plan.any_not_null()
        prefix = 'INSERT INTO %s (%s) VALUES ' % (self.to_sql, ', '.join(key_parts(plan.key_sql('to')) + [q(c, 'to.columns') for c in plan.to_columns]))
        suffix = ' ON DUPLICATE KEY UPDATE ' + ', '.join('%s = VALUES(%s)' % (q(c, 'to.columns'), q(c, 'to.columns')) for c in plan.to_columns)
        # The statement text and the counts stay in session variables (no round trip for them; the checkpoint
        # UPDATE adds the counts server-side); a slice without rows to copy runs the no-op 'DO 0'.
        cur.execute("SELECT IFNULL(CONCAT(%%s, GROUP_CONCAT(IF(%s, %s, NULL) SEPARATOR ','), %%s), 'DO 0'), COUNT(*), COALESCE(SUM(%s), 0) "
                    'INTO @zdt_backfill_sql, @zdt_backfill_scanned, @zdt_backfill_rows FROM %s WHERE %s LOCK IN SHARE MODE'
                    % (anynn, row_text, anynn, self.from_sql, cond), [prefix, suffix] + args)
        self._check_warnings(cur, 'reading a chunk')
        if self.execute_immediate:
            cur.execute('EXECUTE IMMEDIATE @zdt_backfill_sql')     # MariaDB: one round trip instead of two
        else:
            cur.execute('PREPARE zdt_backfill_stmt FROM @zdt_backfill_sql')
            self.prepared = True
            cur.execute('EXECUTE zdt_backfill_stmt')
        self._check_warnings(cur, 'copying a chunk')
        return None

    def _select_chunk(self, cur, lo, hi, scanned=None):
        """One locking INSERT ... SELECT; ``scanned`` is the slice's source row count when the caller knows it."""
        plan = self.plan
        cond, args = range_condition(self.key_sql, lo, hi)
        anynn = plan.any_not_null()
        # The copy must be a *locking* read: under READ COMMITTED a plain INSERT ... SELECT reads a snapshot
        # without locks (verified on MariaDB 10.11), so a row inserted into the range after an earlier locking
        # read, then updated by a writer that commits while the copy waits for the new row's lock, would be
        # overwritten with its older value.  ``LOCK IN SHARE MODE`` makes the SELECT lock each row and read its
        # latest committed value, exactly like the 'values' strategy's read.
        cols = ', '.join(key_parts(plan.key_sql('to')) + [q(c, 'to.columns') for c in plan.to_columns])
        src = ', '.join(key_parts(self.key_sql) + plan.source_values(None))
        upd = ', '.join('%s = VALUES(%s)' % (q(c, 'to.columns'), q(c, 'to.columns')) for c in plan.to_columns)
        cur.execute('INSERT INTO %s (%s) SELECT %s FROM %s WHERE %s AND %s LOCK IN SHARE MODE ON DUPLICATE KEY UPDATE %s'
                    % (self.to_sql, cols, src, self.from_sql, cond, anynn, upd), args)
        rows = _records(cur)
        self._check_warnings(cur, 'copying a chunk')
        if rows is None or scanned is None:
            # progress counts only (a consistent read, no locks): the last slice of a chunk, or a driver that
            # does not report the statement's "Records: N"
            cur.execute('SELECT COUNT(*), COALESCE(SUM(%s), 0) FROM %s WHERE %s' % (anynn, self.from_sql, cond), args)
            counted, selected = cur.fetchone()
            scanned = counted if scanned is None else scanned
            rows = selected if rows is None else rows
        return int(scanned or 0), int(rows or 0)

    def _insert_chunk(self, cur, lo, hi):
        """A plain locking INSERT ... SELECT of the rows the new table does not hold yet (the 'insert' strategy).

        The slice first locks its source rows (a locking read, which also counts them), so no trigger can write a new
        row for them until it commits.  Rows the new table already holds were written by the triggers after they were
        created, so they hold their old row's latest values (this strategy never runs when the new table held rows
        before); leaving them out means the insert never meets an existing row.  An old row inserted into the range
        meanwhile (not locked) may get its new row from its trigger before the insert reaches it: the insert then fails
        with a duplicate key, and the slice is rolled back and run again (never skipped, never merged)."""
        plan = self.plan
        cond, args = range_condition(self.key_sql, lo, hi)
        cur.execute('SELECT COUNT(*) FROM %s WHERE %s LOCK IN SHARE MODE' % (self.from_sql, cond), args)
        scanned = int(cur.fetchone()[0])
        tkey = plan.key_sql('to')
        tcond, targs = range_condition(tkey, lo, hi)
        cur.execute('SELECT %s FROM %s WHERE %s LIMIT %d' % (key_select(tkey), self.to_sql, tcond, MAX_EXCLUDED + 1), targs)
        present = [r[0] for r in cur.fetchall()]
        if len(present) > MAX_EXCLUDED or (present and isinstance(tkey, tuple)):
            # many rows there already (or a composite key): a subquery (the server then buffers what it selects, which is slower)
            skip = ' AND NOT EXISTS (SELECT 1 FROM %s AS zdt_t WHERE %s)' % (
                self.to_sql, key_equals(plan.key_sql('to', 'zdt_t'), plan.key_sql('from', self.from_sql)))
        elif present:
            skip = ' AND %s NOT IN (%s)' % (self.key_sql, ', '.join(['%s'] * len(present)))
            args = list(args) + present
        else:
            skip = ''
        cols = ', '.join(key_parts(plan.key_sql('to')) + [q(c, 'to.columns') for c in plan.to_columns])
        src = ', '.join(key_parts(self.key_sql) + plan.source_values(None))
        cur.execute('INSERT INTO %s (%s) SELECT %s FROM %s WHERE %s AND %s%s LOCK IN SHARE MODE'
                    % (self.to_sql, cols, src, self.from_sql, cond, plan.any_not_null(), skip), args)
        rows = _records(cur)
        self._check_warnings(cur, 'copying a chunk')
        return scanned, int(rows if rows is not None else cur.rowcount)

    def _cleanup_chunk(self, cur, lo, hi):
        """Delete new rows in the range whose old row is gone or all-NULL (only when the new table had rows before the sync)."""
        plan = self.plan
        tkey = plan.key_sql('to', 't')
        cond, args = range_condition(tkey, lo, hi)
        cur.execute('DELETE t FROM %s AS t LEFT JOIN %s AS s ON %s WHERE %s AND (%s IS NULL OR NOT %s)'
                    % (self.to_sql, self.from_sql, key_equals(plan.key_sql('from', 's'), tkey), cond,
                       key_parts(plan.key_sql('from', 's'))[0], plan.any_not_null('s')), args)
        self._check_warnings(cur, 'cleaning a chunk')

    def _update_chunk(self, cur, lo, hi):
        plan = self.plan
        cond, args = range_condition(self.key_sql, lo, hi)
        # FOR UPDATE, not a shared lock: the UPDATE below needs exclusive locks on the same rows, and upgrading a shared
        # lock while an application write waits for that row deadlocks the two (measured: 2-4 deadlocks of the writer
        # per copy of 20k rows at 1000 writes/s with LOCK IN SHARE MODE); the writer now waits at most one slice
        cur.execute('SELECT COUNT(*) FROM %s WHERE %s FOR UPDATE' % (self.from_sql, cond), args)
        scanned = int(cur.fetchone()[0])
        if plan.mapped is not None:
            # Writes win over the backfill: a row a trigger wrote since the triggers exist is in sync (its new columns are
            # up of its old row, or its old column is down of its new row), so only rows no write touched are filled; the
            # triggers skip this session's UPDATE (its copy variable), so nothing is mirrored back.
            cur.execute('UPDATE %s SET %s WHERE %s AND NOT %s' % (self.from_sql, plan.mapped_fill(), cond, plan.mapped_verified()), args)
            rows = cur.rowcount
            self._check_warnings(cur, 'updating a chunk')
            return scanned, int(rows)
        if plan.direction == 'both':
            # as on insert, the non-NULL side wins (from when both are set); both assignments read the same values
            # whether the server assigns left to right or simultaneously
            sets = ', '.join('%s = COALESCE(%s, %s), %s = COALESCE(%s, %s)' % (t, f, t, f, f, t) for f, t in (
                (q(f, 'from.columns'), q(t, 'to.columns')) for f, t in zip(plan.from_columns, plan.to_columns)))
        else:
            sets = ', '.join('%s = %s' % (q(t, 'to.columns'), q(f, 'from.columns')) for f, t in zip(plan.from_columns, plan.to_columns))
        same = ' AND '.join('(%s)' % same_value(q(f, 'from.columns'), q(t, 'to.columns'), type_kind(ft) if type_kind(ft) == type_kind(tt) else 'other')
                            for f, t, ft, tt in plan.pairs())
        cur.execute('UPDATE %s SET %s WHERE %s AND NOT (%s)' % (self.from_sql, sets, cond, same), args)
        rows = cur.rowcount
        self._check_warnings(cur, 'updating a chunk')
        return scanned, int(rows)

    def _transaction(self, body, what):
        """Run body(cursor) in one transaction; deadlocks and lock wait timeouts roll back and retry with backoff."""
        attempt = 0
        while True:
            cur = self.conn.cursor()
            try:
                cur.execute('START TRANSACTION')
                result = body(cur)
                cur.execute('COMMIT')
                return result
            except (ChunkRetry, DatabaseError):
                cur.execute('ROLLBACK')
                raise
            except Exception as exc:  # pylint: disable=broad-except  # driver errors: deadlocks and lock waits retry
                try:
                    cur.execute('ROLLBACK')
                except Exception:  # pylint: disable=broad-except
                    pass
                # the 'insert' strategy meets a row a trigger wrote meanwhile as a duplicate key: run the slice again
                retry = is_lock_error(exc) or (self.strategy == 'insert' and error_code(exc) == ER_DUP_ENTRY)
                if retry and attempt < CHUNK_RETRIES:
                    self.retries += 1
                    if is_lock_error(exc):      # a duplicate key is no contention: run the slice again at once
                        self.sleep(backoff_delay(attempt, cap=2.0))
                    attempt += 1
                    continue
                raise DatabaseError('%s of %s failed: %s' % (what, self.plan.field, exc.args[-1] if exc.args else exc))
            finally:
                cur.close()

    def _slice(self, lo, hi, cleanup, scanned_hint=None):
        """Copy (lo, hi] in one short transaction together with the checkpoint, which counts the rows.

        ``scanned_hint``: the number of source rows in (lo, hi] the boundary query found (progress only)."""
        def body(cur):
            if self.strategy == 'values':
                scanned, rows = 0, 0      # counted server-side (see _values_chunk)
                self._values_chunk(cur, lo, hi)
            elif self.strategy == 'select':
                scanned, rows = self._select_chunk(cur, lo, hi, scanned_hint)
            elif self.strategy == 'insert':
                scanned, rows = self._insert_chunk(cur, lo, hi)
            else:
                scanned, rows = self._update_chunk(cur, lo, hi)
            if cleanup:
                self._cleanup_chunk(cur, lo, hi)
            # the checkpoint doubles as the heartbeat replicas are measured by (sync_throttle)
            beat = sync_state.beat_value(self.clock())
            if self.strategy == 'values':
                cur.execute(sync_state.advance_vars_sql(), (encode_key(hi), beat, self.plan.migration_id, self.plan.index))
            else:
                cur.execute(sync_state.advance_sql(), (encode_key(hi), scanned, scanned, rows, beat,
                                                       self.plan.migration_id, self.plan.index))
        self._transaction(body, 'backfill in key range (%r, %r]' % (lo, hi))

    def _cleanup_tail(self, max_key):
        """Delete new rows keyed above the copied range (all of them when the source was empty) that have no
        counterpart: the chunks only clean up to ``max_key``.  Rows the triggers wrote there have one."""
        self._transaction(lambda cur: self._cleanup_chunk(cur, max_key, None), 'cleanup above key %r' % (max_key,))

    def run_chunk(self, lo, hi, cleanup, deadline, max_rows):
        """Copy from ``lo`` towards ``hi`` as a series of short slices; return the key reached.

        The chunk ends at ``hi``, after ``max_rows`` source rows, or when ``deadline`` has passed, whichever
        comes first, so no chunk runs much longer than chunk_time even when the machine slows down.  Its
        end is found by the slices' own boundary queries: one for the whole chunk would read all of its
        rows once more (measured, 1M rows into a user_id-keyed table, no writer: boundary queries took
        14 % of the copy with a chunk-wide one, 8 % without).

        A slice is one transaction that holds shared locks on its source rows while it runs, so a
        slice is kept to about SLICE_TIME seconds: an application write to a row being copied waits
        at most one slice, never a whole chunk.
        """
        source_rows = 0
        s_lo = lo
        while True:
            # chunk_time (nearly) used up: the chunk ends here, not one slice later (a margin of one more slice:
            # slices vary, and the boundary query runs before each)
            if s_lo != lo and self.clock() + 2 * self.last_slice_seconds >= deadline:
                return s_lo
            if source_rows >= max_rows:
                return s_lo
            # (s_lo, s_hi] holds exactly n_slice source rows unless it is the last slice; never more than the chunk has left
            n_slice = min(self.slice_rows, max_rows - source_rows)
            s_hi = self.boundary(s_lo, hi, n_slice)
            last = s_hi is None or s_hi == hi
            if s_hi is None:
                s_hi = hi
            t0 = self.clock()
            try:
                self._slice(s_lo, s_hi, cleanup, None if last else n_slice)
            except ChunkRetry:
                if self.slice_rows <= MIN_CHUNK:
                    raise DatabaseError('a slice of %d rows of %s does not fit group_concat_max_len' % (self.slice_rows, self.plan.field))
                self.slice_rows = max(MIN_CHUNK, self.slice_rows // 4)
                continue
            dt = self.clock() - t0
            self.last_slice_seconds = dt
            self.max_slice_seconds = max(self.max_slice_seconds, dt)
            target = int(n_slice * self.slice_time / max(dt, 0.0005))
            if n_slice == self.slice_rows or target < self.slice_rows:   # a slice cut short by the chunk is no reason to grow
                self.slice_rows = max(MIN_CHUNK, min(MAX_SLICE, self.slice_rows * 2, max(self.slice_rows // 2, target)))
            source_rows += n_slice
            s_lo = s_hi
            if last:
                return s_hi

    # ---------------------------------------------------------------- driver

    def run(self, fresh, target_had_rows=None):
        """Run (or resume) the backfill. ``fresh`` discards any checkpoint (the triggers were just created).

        ``target_had_rows``: whether the new table held rows before the triggers were created (then the copy
        also deletes rows that have no counterpart); None reads it now, which is conservative: rows the
        triggers wrote meanwhile count too.
        """
        plan = self.plan
        started = self.clock()
        sync_state.ensure_table(self.conn, self.db)
        row = None if fresh else sync_state.read(self.conn, self.db, plan.migration_id, plan.index)
        result = dict(rows_copied=0, rows_total=0, chunks=0, seconds=0.0, rows_per_second=0.0, resumed_from=None,
                      max_chunk_seconds=0.0, throttled_seconds=0.0, max_replica_lag_seen=None, strategy=self.strategy)
        if row is not None and row['state'] == 'done':
            result['rows_total'] = int(row['rows_total'])
            return result
        self.session_setup()
        try:
            if row is not None and row['state'] == 'running':
                max_key = row['max_key']
                lo = row['last_key']
                cleanup = bool(row['cleanup'])
                self.choose(autoinc_lock_mode(self.conn), cleanup)
                result['strategy'] = self.strategy
                result['resumed_from'] = lo
                result['rows_total'] = int(row['rows_total'])
                sync_state.resume(self.conn, plan.migration_id, plan.index, self.clock())
            else:
                cleanup = target_has_rows(self.conn, plan) if target_had_rows is None else bool(target_had_rows)
                self.choose(autoinc_lock_mode(self.conn), cleanup)
                result['strategy'] = self.strategy
                max_key = self.max_key()
                lo = None
                result['rows_total'] = self.count_upto(max_key)
                sync_state.start(self.conn, plan.migration_id, plan.index, self.strategy, max_key, result['rows_total'], cleanup,
                                 self.clock())
            copied_before = int((sync_state.read(self.conn, self.db, plan.migration_id, plan.index) or {}).get('rows_copied') or 0)
            n = self.chunk_size
            while max_key is not None and not (lo is not None and lo == max_key):
                self.throttler.wait()
                t0 = self.clock()
                hi = self.run_chunk(lo, max_key, cleanup, t0 + self.chunk_time, n)
                last = hi == max_key
                dt = self.clock() - t0
                self.max_chunk_seconds = max(self.max_chunk_seconds, dt)
                result['chunks'] += 1
                lo = hi
                if last:
                    break
                target = int(n * self.chunk_time / max(dt, 0.001))
                n = max(MIN_CHUNK, min(MAX_CHUNK, n * 2, max(n // 2, target)))
            if cleanup:
                self._cleanup_tail(max_key)
            sync_state.finish(self.conn, plan.migration_id, plan.index)
            done = sync_state.read(self.conn, self.db, plan.migration_id, plan.index)
            result['rows_copied'] = int(done['rows_copied']) - copied_before
        finally:
            try:
                self.session_teardown()
            except Exception:  # pylint: disable=broad-except  # best effort; the session ends with the module
                pass
        result['seconds'] = round(self.clock() - started, 3)
        result['rows_per_second'] = round(result['rows_total'] / result['seconds'], 1) if result['seconds'] > 0 else 0.0
        if result['resumed_from'] is not None:
            done = sync_state.read(self.conn, self.db, plan.migration_id, plan.index)
            if done and done['run_rows'] and result['seconds'] > 0:
                result['rows_per_second'] = round(done['run_rows'] / result['seconds'], 1)
        result['max_chunk_seconds'] = round(self.max_chunk_seconds, 3)
        result['throttled_seconds'] = round(self.throttler.throttled_seconds, 2)
        if self.throttler.max_replica_lag_seen is not None:
            result['max_replica_lag_seen'] = round(self.throttler.max_replica_lag_seen, 3)
        result['max_slice_seconds'] = round(self.max_slice_seconds, 4)
        result['retries'] = self.retries
        return result


def _records(cur):
    """Rows an ``INSERT ... SELECT`` selected, from the server's "Records: N  Duplicates: D  Warnings: W" (None if absent)."""
    message = getattr(getattr(cur, '_result', None), 'message', None)
    if isinstance(message, bytes):
        message = message.decode('ascii', 'replace')
    # PyMySQL keeps the info string with its length prefix
    match = re.search(r'Records:\s*(\d+)', message or '')
    return int(match.group(1)) if match else None


def foreign_key_checks_redundant(conn, db, plan):
    """True when the copy's writes cannot violate or trigger any foreign key, so it may skip the checks.

    That holds when every foreign key of the new table is exactly ``to.key -> from.table(from.key)``
    (each copied row's key is a source row the slice holds a shared lock on until it commits: the parent
    exists and stays), no foreign key references the new table (no cascade of ours to skip) and the new
    table has no trigger but ours (a user's trigger would otherwise write without checks).  The checks
    are a quarter to a third of a copy's cost (measured here, bare INSERT ... SELECT of 1M users, median
    of 3: into the seed's ``addresses`` 10.2 s with them, 7.7 s without; keyed by user_id 7.3 s / 4.9 s).
    """
    if plan.kind != 'cross':
        return False
    parent = (db, plan.from_table, [k.lower() for k in plan.to_keys], [k.lower() for k in plan.from_keys])
    for fk in foreign_keys(conn, db, plan.to_table).values():
        if (fk['ref_schema'], fk['ref_table'], [c.lower() for c in fk['columns']], [c.lower() for c in fk['ref_columns']]) != parent:
            return False        # another parent, more columns, or the new table itself
    if referencing_foreign_keys(conn, db, plan.to_table):
        return False            # another table references the new one
    ours = set(t.name for t in plan.triggers())
    return all(t['name'] in ours for t in triggers(conn, db) if t['table'] == plan.to_table)


def target_has_rows(conn, plan):
    """True when the new table of a cross-table entry holds any row."""
    if plan.kind == 'same':
        return False
    with conn.cursor() as cur:
        cur.execute('SELECT 1 FROM %s LIMIT 1' % q(plan.to_table, 'to.table'))
        return cur.fetchone() is not None


def rows_total_estimate(conn, plan):
    """Rows a fresh backfill would consider now (check mode)."""
    with conn.cursor() as cur:
        cur.execute('SELECT COUNT(*) FROM %s' % q(plan.from_table, 'from.table'))
        return int(cur.fetchone()[0])
