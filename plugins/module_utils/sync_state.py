# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backfill checkpoints and progress (table ``zdt_sync_progress``), no Ansible import.

The backfill updates its row in the same transaction as each chunk, so the checkpoint is exact
after a ``kill -9`` and ``mysql_sync_info`` can report progress while the backfill runs.

The row is also the copy's heartbeat: every slice writes the module's clock (microseconds) into
``heartbeat`` in its own transaction, and so does every poll while the copy is paused (with
``paused`` and ``pause_reason``).  A replica that shows heartbeat *h* has applied every write the
primary committed before *h* was written, so ``now - h`` bounds its lag (both ends read the same
clock, the module's; the servers' clocks do not matter).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import query
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_inspect import columns, table_exists
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import quote_identifier
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_keys import decode_key, encode_key

PROGRESS_TABLE = 'zdt_sync_progress'

CREATE_PROGRESS_TABLE = (
    'CREATE TABLE IF NOT EXISTS %s ('
    ' migration_id BIGINT NOT NULL, sync_index INT NOT NULL,'
    ' state VARCHAR(16) NOT NULL,'
    ' strategy VARCHAR(16) NULL,'
    ' last_key TEXT NULL, max_key TEXT NULL,'
    ' cleanup TINYINT NOT NULL DEFAULT 0,'
    ' rows_total BIGINT NOT NULL DEFAULT 0, rows_done BIGINT NOT NULL DEFAULT 0,'
    ' rows_copied BIGINT NOT NULL DEFAULT 0, chunks BIGINT NOT NULL DEFAULT 0,'
    ' run_rows BIGINT NOT NULL DEFAULT 0, run_started_at DATETIME(6) NULL,'
    ' started_at DATETIME(6) NULL, updated_at DATETIME(6) NULL, finished_at DATETIME(6) NULL,'
    ' heartbeat BIGINT NULL, paused TINYINT NOT NULL DEFAULT 0, pause_reason VARCHAR(255) NULL,'
    ' PRIMARY KEY (migration_id, sync_index)) ENGINE=InnoDB')

# Columns added after the first release of the table: ensure_table adds them to a table an older run created.
ADDED_COLUMNS = (('heartbeat', 'BIGINT NULL'), ('paused', 'TINYINT NOT NULL DEFAULT 0'), ('pause_reason', 'VARCHAR(255) NULL'))
DEFAULTS = dict(heartbeat=None, paused=0, pause_reason=None)


def table_sql():
    return quote_identifier(PROGRESS_TABLE)


def progress_table_exists(conn, db):
    return table_exists(conn, db, PROGRESS_TABLE)


def ensure_table(conn, db):
    query(conn, CREATE_PROGRESS_TABLE % table_sql())
    present = columns(conn, db, PROGRESS_TABLE)
    missing = [(name, definition) for name, definition in ADDED_COLUMNS if name not in present]
    if missing:
        additions = ', '.join('ADD COLUMN %s %s' % (quote_identifier(name), definition) for name, definition in missing)
        query(conn, 'ALTER TABLE %s %s' % (table_sql(), additions))


def read(conn, db, migration_id, index):
    """The checkpoint row as a dict, or None (a table of an older run lacks the later columns: their defaults)."""
    if not progress_table_exists(conn, db):
        return None
    with conn.cursor() as cur:
        cur.execute('SELECT * FROM %s WHERE migration_id = %%s AND sync_index = %%s' % table_sql(), (int(migration_id), int(index)))
        found = cur.fetchone()
        names = [d[0] for d in cur.description]
    if found is None:
        return None
    row = dict(DEFAULTS)
    row.update(zip(names, found))
    row['last_key'] = decode_key(row['last_key'])
    row['max_key'] = decode_key(row['max_key'])
    return row


def read_any(conn, db, migration_id):
    """True when any checkpoint of the migration exists."""
    if not progress_table_exists(conn, db):
        return False
    return bool(query(conn, 'SELECT 1 FROM %s WHERE migration_id = %%s LIMIT 1' % table_sql(), (int(migration_id),)))


def beat_value(seconds):
    """The heartbeat column's value for a time of the module's clock (seconds since the epoch): microseconds."""
    return int(round(float(seconds) * 1000000))


def beat_seconds(value):
    return None if value is None else int(value) / 1000000.0


def start(conn, migration_id, index, strategy, max_key, rows_total, cleanup, now):
    """Write a fresh checkpoint (replacing any older one); ``now``: the module's clock, the first heartbeat."""
    query(conn, 'REPLACE INTO %s (migration_id, sync_index, state, strategy, last_key, max_key, cleanup, rows_total, rows_done, '
                'rows_copied, chunks, run_rows, run_started_at, started_at, updated_at, finished_at, heartbeat, paused, pause_reason) '
                "VALUES (%%s, %%s, 'running', %%s, NULL, %%s, %%s, %%s, 0, 0, 0, 0, NOW(6), NOW(6), NOW(6), NULL, %%s, 0, NULL)" % table_sql(),
          (int(migration_id), int(index), strategy, encode_key(max_key), 1 if cleanup else 0, int(rows_total), beat_value(now)))


def resume(conn, migration_id, index, now):
    query(conn, "UPDATE %s SET state = 'running', run_rows = 0, run_started_at = NOW(6), updated_at = NOW(6), heartbeat = %%s, "
                'paused = 0, pause_reason = NULL WHERE migration_id = %%s AND sync_index = %%s' % table_sql(),
          (beat_value(now), int(migration_id), int(index)))


def advance_sql():
    """UPDATE run inside each chunk's transaction: args (last_key, rows_done_delta, run_rows_delta, rows_copied_delta, heartbeat,
    mid, index)."""
    return ('UPDATE %s SET last_key = %%s, rows_done = rows_done + %%s, run_rows = run_rows + %%s, rows_copied = rows_copied + %%s, '
            'chunks = chunks + 1, updated_at = NOW(6), heartbeat = %%s WHERE migration_id = %%s AND sync_index = %%s' % table_sql())


def advance_vars_sql():
    """Like :func:`advance_sql`, with the counts taken from the session variables the 'values' slice set
    (saves a round trip per slice): args (last_key, heartbeat, mid, index)."""
    return ('UPDATE %s SET last_key = %%s, rows_done = rows_done + @zdt_backfill_scanned, run_rows = run_rows + @zdt_backfill_scanned, '
            'rows_copied = rows_copied + @zdt_backfill_rows, chunks = chunks + 1, updated_at = NOW(6), heartbeat = %%s '
            'WHERE migration_id = %%s AND sync_index = %%s' % table_sql())


def beat(conn, migration_id, index, now, pause_reason=None):
    """A heartbeat outside a slice (autocommit): while the copy is paused (``pause_reason`` says why) or to mark a
    point replicas must reach.  ``pause_reason`` None clears the pause."""
    query(conn, 'UPDATE %s SET heartbeat = %%s, paused = %%s, pause_reason = %%s WHERE migration_id = %%s AND sync_index = %%s'
          % table_sql(), (beat_value(now), 1 if pause_reason else 0, (pause_reason or '')[:255] or None, int(migration_id), int(index)))


def heartbeat_query(migration_id, index):
    """(sql, args) that reads the heartbeat of a checkpoint, on any server (a replica)."""
    return ('SELECT heartbeat FROM %s WHERE migration_id = %%s AND sync_index = %%s' % table_sql(), (int(migration_id), int(index)))


def finish(conn, migration_id, index):
    query(conn, "UPDATE %s SET state = 'done', finished_at = NOW(6), updated_at = NOW(6), paused = 0, pause_reason = NULL "
                'WHERE migration_id = %%s AND sync_index = %%s' % table_sql(), (int(migration_id), int(index)))


def delete(conn, db, migration_id):
    """Remove a migration's checkpoints; drop the table when it becomes empty. Returns True if anything was removed."""
    if not progress_table_exists(conn, db):
        return False
    with conn.cursor() as cur:
        cur.execute('DELETE FROM %s WHERE migration_id = %%s' % table_sql(), (int(migration_id),))
        removed = cur.rowcount > 0
        cur.execute('SELECT COUNT(*) FROM %s' % table_sql())
        if cur.fetchone()[0] == 0:
            cur.execute('DROP TABLE IF EXISTS %s' % table_sql())
            removed = True
    return removed


def progress(row, now_row=None):
    """Public progress dict {state, rows_done, rows_total, rows_per_second, eta_seconds, paused, pause_reason} from a checkpoint row.

    ``paused``: the copy waits (a replica lags or is unreachable, the primary is busy) and ``pause_reason`` says why;
    the reason of the last pause stays in the row after a run stopped while paused (then ``paused`` is false)."""
    if row is None:
        return dict(state='not_started', rows_done=0, rows_total=None, rows_per_second=None, eta_seconds=None, paused=False,
                    pause_reason=None)
    rate = None
    eta = None
    if row.get('run_started_at') and row.get('updated_at'):
        seconds = (row['updated_at'] - row['run_started_at']).total_seconds()
        if seconds > 0 and row['run_rows']:
            rate = round(row['run_rows'] / seconds, 1)
    remaining = max(0, int(row['rows_total']) - int(row['rows_done']))
    if row['state'] == 'done':
        eta = 0
    elif rate:
        eta = round(remaining / rate, 1)
    return dict(state=row['state'], rows_done=int(row['rows_done']), rows_total=int(row['rows_total']),
                rows_per_second=rate, eta_seconds=eta, paused=bool(row.get('paused')) and row['state'] == 'running',
                pause_reason=row.get('pause_reason'))


def describe_progress(migration_id, entries):
    """One line for the operator from mysql_sync_info's entries: each entry's state, rows, rate and ETA."""
    parts = []
    for entry in entries:
        b = entry.get('backfill') or {}
        done, total = int(b.get('rows_done') or 0), b.get('rows_total')
        share = ' (%d %%)' % (100 * done // int(total)) if total else ''
        text = 'sync[%s] %s: %d/%s rows%s' % (entry.get('index'), b.get('state', '?'), done, total if total is not None else '?', share)
        if b.get('rows_per_second'):
            text += ', %d rows/s' % int(b['rows_per_second'])
        if b.get('eta_seconds') is not None and b.get('state') == 'running':
            text += ', ETA %ss' % b['eta_seconds']
        if b.get('paused'):
            text += ', paused: %s' % (b.get('pause_reason') or 'throttled')
        parts.append(text)
    return 'migration %s backfill: %s' % (migration_id, '; '.join(parts) or 'no sync entries')
