# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running DDL without stalling the site (no Ansible import); the one DDL runner of the collection.

A DDL statement waits for a metadata lock, and while it waits every later query of the table queues behind it.
So every statement runs with a short session ``lock_wait_timeout`` and, when the wait times out, is retried with
exponential backoff and jitter: the site's queries queue for at most ``lock_wait_timeout`` seconds at a time.
After the last retry the error names the session that blocks the lock, when the login user may see it.

An ALTER that asks for ``ALGORITHM=INSTANT`` may carry an online fallback (``ALGORITHM=INPLACE, LOCK=NONE``) tried
when the server refuses INSTANT; a change the server cannot make online fails: the table is never copied silently.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import query
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_errors import (
    LOCK_ERRORS, ONLINE_REFUSED, backoff_delay, error_code, error_message)


def describe_blockers(conn, database, tables):
    """Best-effort text naming who holds metadata locks / transactions on ``tables``; None when nothing is visible."""
    found = []
    try:
        if tables:
            marks = ', '.join(['%s'] * len(tables))
            rows = query(conn, 'SELECT m.THREAD_ID, m.LOCK_MODE, m.TABLE_NAME, p.USER, p.HOST, p.TIME, LEFT(p.INFO, 120) '
                               'FROM information_schema.METADATA_LOCK_INFO m LEFT JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID '
                               'WHERE m.TABLE_SCHEMA = %%s AND m.TABLE_NAME IN (%s) AND m.THREAD_ID <> CONNECTION_ID()' % marks,
                         [database] + list(tables))
            for tid, mode, table, user, host, secs, info in rows:
                running = ', running: %s' % info if info else ''
                found.append('connection %s (%s@%s) holds %s on %s for %ss%s' % (tid, user, host, mode, table, secs, running))
    except Exception:  # pylint: disable=broad-except
        pass   # the metadata_lock_info plugin is not installed
    if not found:
        try:
            rows = query(conn, 'SELECT p.ID, p.USER, p.HOST, p.COMMAND, TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), LEFT(p.INFO, 120) '
                               'FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id '
                               'WHERE p.ID <> CONNECTION_ID() ORDER BY t.trx_started LIMIT 3')
            for pid, user, host, command, age, info in rows:
                found.append('connection %s (%s@%s, %s) has a transaction open for %ss%s' % (
                    pid, user, host, command, age, ', running: %s' % info if info else ''))
        except Exception:  # pylint: disable=broad-except
            pass   # no PROCESS privilege
    return '; '.join(found) if found else None


def run_ddl(conn, statement, what, lock_wait_timeout=1, retries=10, fallback=None, database=None, tables=(),
            sleep=time.sleep, log=None):
    """Run one DDL ``statement`` (``what`` names it in messages) and return the statement that ran.

    ``fallback``: the online alternative tried once when the server refuses the statement's ALGORITHM=INSTANT.
    ``database`` and ``tables``: where to look for the blocking session when the lock waits give up.
    Raises DatabaseError for anything the server refused, naming ``what``.
    """
    query(conn, 'SET SESSION lock_wait_timeout = %s', (int(lock_wait_timeout),))
    attempt = 0
    while True:
        try:
            query(conn, statement)
            return statement
        except Exception as exc:  # pylint: disable=broad-except  # driver errors: decided by their code
            code = error_code(exc)
            if code is None:
                raise
            message = error_message(exc)
            if code in ONLINE_REFUSED:
                if fallback and statement != fallback:
                    statement = fallback
                    continue
                raise DatabaseError('%s: the server cannot make this change online (%s): %s; refusing to copy the table'
                                    % (what, statement, message))
            if code in LOCK_ERRORS:
                if attempt >= retries:
                    blocker = describe_blockers(conn, database, tables) if database else None
                    raise DatabaseError('%s: gave up after %d attempts waiting %ss each for a metadata lock (%s); %s'
                                        % (what, attempt + 1, lock_wait_timeout, message,
                                           'blocked by ' + blocker if blocker else 'the blocking session is not visible to this user '
                                           '(needs the PROCESS privilege)'))
                delay = backoff_delay(attempt)
                if log:
                    log('%s: lock wait timeout, retry %d in %.2fs' % (what, attempt + 1, delay))
                sleep(delay)
                attempt += 1
                continue
            raise DatabaseError('%s failed: error %s: %s (statement: %s)' % (what, code, message, statement))


def run_all(conn, statements, lock_wait_timeout=1, retries=10, database=None, sleep=time.sleep):
    """Run (statement, what, tables) triples one by one with :func:`run_ddl`."""
    for statement, what, tables in statements:
        run_ddl(conn, statement, what, lock_wait_timeout=lock_wait_timeout, retries=retries, database=database,
                tables=tables, sleep=sleep)
