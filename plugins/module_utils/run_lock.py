# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of upgrade, rollback, contract or site at a time, wherever the runs come from (no Ansible import).

AWX runs each job in its own container, so the lock cannot live on the controller: it is a row of the ``zdt_run_lock``
table in the application's database (:class:`DatabaseLock`) or, for a stack without a database, a file on every load
balancer (:class:`FileLock`).  A run takes the lock with a random token, refreshes its heartbeat while it works and
deletes it at the end.  A second run fails up front naming the holder and when it started; a lock whose heartbeat
is older than ``stale_after`` seconds belongs to a run that died, and is taken over (the result says whose it was).
Timestamps come from one clock per lock: the database server's, or the load balancer's.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import json
import os
import time

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import query
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_ddl import run_ddl
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import quote_identifier

TABLE = 'zdt_run_lock'


class LockHeld(ZdtError):
    """Another live run holds the lock; ``holder`` describes it."""

    def __init__(self, name, holder):
        self.holder = holder
        super(LockHeld, self).__init__(
            'another run holds lock %s: %s, started %s (last heartbeat %ss ago); wait for it to finish, or, if it died, '
            'for its heartbeat to be %ss old, when the next run takes the lock over'
            % (name, holder['holder'], holder['started_at'], holder['heartbeat_age'], holder['stale_after']))


class LockLost(ZdtError):
    """The lock this run held was taken over (its heartbeat had gone stale) or removed."""


def describe(row, stale_after):
    holder, playbook, started_at, age = row
    return dict(holder='%s (%s)' % (holder, playbook) if playbook else holder, started_at=str(started_at),
                heartbeat_age=int(age), stale_after=int(stale_after))


class DatabaseLock(object):
    """The lock as a row of ``zdt_run_lock`` in the application's database (the server's clock)."""

    def __init__(self, conn, name):
        self.conn = conn
        self.name = name
        self.table = quote_identifier(TABLE)

    def _ensure_table(self, lock_wait_timeout):
        if query(self.conn, 'SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s', (TABLE,)):
            return
        run_ddl(self.conn, 'CREATE TABLE IF NOT EXISTS %s (name VARCHAR(64) NOT NULL, token CHAR(32) NOT NULL, '
                           'holder VARCHAR(255) NOT NULL, playbook VARCHAR(255) NOT NULL, started_at DATETIME(6) NOT NULL, '
                           'heartbeat_at DATETIME(6) NOT NULL, PRIMARY KEY (name)) ENGINE=InnoDB' % self.table,
                'creating %s' % TABLE, lock_wait_timeout=lock_wait_timeout, retries=3)

    def _row(self, lock=False):
        rows = query(self.conn, 'SELECT token, holder, playbook, started_at, TIMESTAMPDIFF(SECOND, heartbeat_at, NOW(6)) FROM %s '
                                'WHERE name = %%s%s' % (self.table, ' FOR UPDATE' if lock else ''), (self.name,))
        return rows[0] if rows else None

    def peek(self, stale_after):
        """Who holds the lock now ({holder, started_at, heartbeat_age, stale}) or None; reads only."""
        if not query(self.conn, 'SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s', (TABLE,)):
            return None
        row = self._row()
        if row is None:
            return None
        info = describe(row[1:], stale_after)
        info['stale'] = info['heartbeat_age'] > stale_after
        return info

    def acquire(self, token, holder, playbook, stale_after, lock_wait_timeout=5):
        """Take the lock; returns {changed, took_over}. LockHeld when a live run holds it."""
        self._ensure_table(lock_wait_timeout)
        query(self.conn, 'START TRANSACTION')
        try:
            row = self._row(lock=True)
            took_over = None
            if row is None:
                query(self.conn, 'INSERT INTO %s (name, token, holder, playbook, started_at, heartbeat_at) '
                                 'VALUES (%%s, %%s, %%s, %%s, NOW(6), NOW(6))' % self.table, (self.name, token, holder, playbook))
            elif row[0] == token:
                query(self.conn, 'UPDATE %s SET heartbeat_at = NOW(6) WHERE name = %%s' % self.table, (self.name,))
                query(self.conn, 'COMMIT')
                return dict(changed=False, took_over=None)
            elif row[4] is not None and int(row[4]) > stale_after:
                took_over = describe(row[1:], stale_after)
                query(self.conn, 'UPDATE %s SET token = %%s, holder = %%s, playbook = %%s, started_at = NOW(6), heartbeat_at = NOW(6) '
                                 'WHERE name = %%s' % self.table, (token, holder, playbook, self.name))
            else:
                raise LockHeld(self.name, describe(row[1:], stale_after))
            query(self.conn, 'COMMIT')
        except Exception:
            query(self.conn, 'ROLLBACK')
            raise
        return dict(changed=True, took_over=took_over)

    def heartbeat(self, token):
        with self.conn.cursor() as cur:
            cur.execute('UPDATE %s SET heartbeat_at = NOW(6) WHERE name = %%s AND token = %%s' % self.table, (self.name, token))
            mine = 'SELECT 1 FROM %s WHERE name = %%s AND token = %%s' % self.table
            if cur.rowcount == 0 and not query(self.conn, mine, (self.name, token)):
                raise LockLost('lock %s is no longer this run\'s (its heartbeat went stale and another run took it over, or '
                               'it was removed); stop here: two runs must not change the stack at once' % self.name)
        return dict(changed=True, took_over=None)

    def release(self, token):
        if not query(self.conn, 'SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s', (TABLE,)):
            return dict(changed=False, took_over=None)
        with self.conn.cursor() as cur:
            cur.execute('DELETE FROM %s WHERE name = %%s AND token = %%s' % self.table, (self.name, token))
            return dict(changed=cur.rowcount > 0, took_over=None)


class FileLock(object):
    """The lock as a JSON file (the host's clock); read-modify-write under flock."""

    def __init__(self, path, name, clock=time.time):
        self.path = path
        self.name = name
        self.clock = clock

    def _open(self):
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        handle = open(self.path, 'a+', encoding='utf-8')
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        return handle

    @staticmethod
    def _read(handle):
        text = handle.read().strip()
        try:
            record = json.loads(text) if text else None
        except ValueError:
            record = None
        return record if isinstance(record, dict) and record.get('token') else None

    @staticmethod
    def _write(handle, record):
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(record) if record else '')
        handle.flush()
        os.fsync(handle.fileno())

    def _describe(self, record, stale_after):
        row = (record['holder'], record.get('playbook', ''),
               time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(record['started_at'])) + ' UTC',
               max(0, self.clock() - record['heartbeat_at']))
        return describe(row, stale_after)

    def peek(self, stale_after):
        if not os.path.exists(self.path):
            return None
        with open(self.path, encoding='utf-8') as handle:
            record = self._read(handle)
        if record is None:
            return None
        info = self._describe(record, stale_after)
        info['stale'] = info['heartbeat_age'] > stale_after
        return info

    def acquire(self, token, holder, playbook, stale_after, lock_wait_timeout=None):
        with self._open() as handle:
            record = self._read(handle)
            now = self.clock()
            took_over = None
            if record is not None and record['token'] == token:
                record['heartbeat_at'] = now
                self._write(handle, record)
                return dict(changed=False, took_over=None)
            if record is not None and now - record['heartbeat_at'] <= stale_after:
                raise LockHeld(self.name, self._describe(record, stale_after))
            if record is not None:
                took_over = self._describe(record, stale_after)
            self._write(handle, dict(name=self.name, token=token, holder=holder, playbook=playbook, started_at=now, heartbeat_at=now))
        return dict(changed=True, took_over=took_over)

    def heartbeat(self, token):
        with self._open() as handle:
            record = self._read(handle)
            if record is None or record['token'] != token:
                raise LockLost('lock %s (%s) is no longer this run\'s (its heartbeat went stale and another run took it over, or '
                               'it was removed); stop here: two runs must not change the stack at once' % (self.name, self.path))
            record['heartbeat_at'] = self.clock()
            self._write(handle, record)
        return dict(changed=True, took_over=None)

    def release(self, token):
        if not os.path.exists(self.path):
            return dict(changed=False, took_over=None)
        with self._open() as handle:
            record = self._read(handle)
            if record is None or record['token'] != token:
                return dict(changed=False, took_over=None)
            self._write(handle, None)
        return dict(changed=True, took_over=None)
