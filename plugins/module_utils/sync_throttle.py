# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything that pauses the backfill between chunks (no Ansible import).

Before each chunk :meth:`Throttler.wait` returns at once when the copy may go on, or waits while

* the primary's ``Threads_running`` is above ``max_threads_running`` (0: never), or
* a replica lags more than ``max_replica_lag`` seconds, or cannot be reached (for at most
  ``replica_timeout`` seconds; then :class:`ReplicaTimeout`).

Replica lag is measured as gh-ost does, never with ``Seconds_Behind_Master`` (which reports no lag
while the replica's I/O thread is behind, and phantom lag after idle periods): the copy writes the
module's clock into a heartbeat on the primary (the checkpoint row, :mod:`sync_state`; every slice
does, and every poll while paused) and reads it back on each replica.  A replica showing heartbeat
*h* has applied everything committed on the primary before *h* was written, so ``now - h`` is an
upper bound of its lag, taken with one clock.  While paused, the throttler writes a heartbeat every
:data:`POLL` seconds (so a caught-up replica reads about that much lag) together with the reason,
which ``mysql_sync_info`` reports.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_state
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import query
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_errors import ER_BAD_DB, ER_NO_SUCH_TABLE, error_code
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_replicas import ReplicaUnavailable

POLL = 0.1


class ReplicaTimeout(DatabaseError):
    """A replica stayed unreachable (or showed no heartbeat at all) for longer than replica_timeout."""


class Throttler(object):
    """Decides before each chunk of one sync entry whether the copy may go on, and waits while it may not."""

    def __init__(self, conn, migration_id, index, max_threads_running=25, replicas=(), max_replica_lag=1.5, replica_timeout=60.0,
                 sleep=time.sleep, clock=time.time):
        self.conn = conn
        self.migration_id = migration_id
        self.index = index
        self.max_threads_running = int(max_threads_running)
        self.replicas = list(replicas)
        self.max_replica_lag = float(max_replica_lag)
        self.replica_timeout = float(replica_timeout)
        self.sleep = sleep
        self.clock = clock
        self.throttled_seconds = 0.0
        self.max_replica_lag_seen = None
        self.started = None            # the first check: a replica showing no heartbeat is counted from then
        self.down_since = {}           # replica label -> when it was first found unreachable, in the current outage

    # ------------------------------------------------------------ what holds the copy back

    def threads_running(self):
        rows = query(self.conn, "SHOW GLOBAL STATUS LIKE 'Threads_running'")
        return int(rows[0][1]) if rows else 0

    def replica_lag(self, replica, now):
        """Seconds ``replica`` is behind the heartbeat, or None when it cannot be reached (within replica_timeout)."""
        sql, args = sync_state.heartbeat_query(self.migration_id, self.index)
        try:
            rows = replica.query(sql, args)
        except ReplicaUnavailable as exc:
            since = self.down_since.setdefault(replica.label, now)
            if now - since > self.replica_timeout:
                raise ReplicaTimeout('replica %s has been unreachable for %.0f s (replica_timeout=%s): %s. The backfill stopped; '
                                     'its checkpoint is kept: make the replica reachable (or remove it from replicas) and run '
                                     'again, the copy resumes where it stopped' % (replica.label, now - since, self.replica_timeout, exc.detail))
            return None
        except Exception as exc:  # pylint: disable=broad-except  # the checkpoint table or database not replicated yet
            if error_code(exc) not in (ER_NO_SUCH_TABLE, ER_BAD_DB):
                raise DatabaseError('replica %s: reading the heartbeat failed: %s' % (replica.label, exc))
            rows = ()
        self.down_since.pop(replica.label, None)
        seen = sync_state.beat_seconds(rows[0][0]) if rows else None
        if seen is None:
            if now - self.started > self.replica_timeout:
                raise ReplicaTimeout('replica %s has shown no heartbeat of the backfill for %.0f s (replica_timeout=%s): it does not '
                                     'replicate this database, or lags more than that. The checkpoint is kept: run again once it has '
                                     'caught up' % (replica.label, now - self.started, self.replica_timeout))
            return now - self.started
        return max(0.0, now - seen)

    def reason(self):
        """Why the copy must wait now, or None."""
        now = self.clock()
        if self.started is None:
            self.started = now
        if self.max_threads_running > 0:
            running = self.threads_running()
            if running > self.max_threads_running:
                return 'Threads_running is %d, above max_threads_running=%d' % (running, self.max_threads_running)
        waits = []
        for replica in self.replicas:
            lag = self.replica_lag(replica, now)
            if lag is None:
                waits.append('replica %s is unreachable (for %.1f s; replica_timeout=%s)'
                             % (replica.label, now - self.down_since[replica.label], self.replica_timeout))
                continue
            self.max_replica_lag_seen = lag if self.max_replica_lag_seen is None else max(self.max_replica_lag_seen, lag)
            if lag > self.max_replica_lag:
                waits.append('replica %s lags %.1f s, more than max_replica_lag=%s' % (replica.label, lag, self.max_replica_lag))
        return '; '.join(waits) or None

    # ------------------------------------------------------------ waiting

    def wait(self):
        """Return when the copy may go on; write heartbeats (with the reason) while it may not."""
        paused_at = None
        while True:
            why = self.reason()
            if why is None:
                break
            if paused_at is None:
                paused_at = self.clock()
            sync_state.beat(self.conn, self.migration_id, self.index, self.clock(), why)
            self.sleep(POLL)
        if paused_at is not None:
            self.throttled_seconds += self.clock() - paused_at
            sync_state.beat(self.conn, self.migration_id, self.index, self.clock(), None)

    def close(self):
        for replica in self.replicas:
            replica.close()
