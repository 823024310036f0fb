# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify a replica against the primary: checksums of a sync entry's mapped columns, both shapes (no Ansible import).

The application keeps writing while this runs, and a replica is always somewhat behind, so two reads
at the same moment differ without anything being wrong.  Each key range is therefore compared with
three reads that are ordered in the primary's history:

1. P1: the range's row counts and hash sums on the primary, in one consistent snapshot;
2. then a heartbeat is written on the primary and the replica is waited for until it shows it: the
   replica has now applied everything P1 saw;
3. R: the same sums on the replica (one snapshot), then P2: the same on the primary again.

The replica's state lies between P1's and P2's, so R equal to P1 or to P2 proves the range equal.  R
differing from both while P1 equals P2 (nothing changed the range on the primary) is a difference,
once it is seen twice; when the range kept changing, the comparison goes down to keys (row hashes
per key, the same three reads, only the keys still in question each round).  A key that still changed
in every round is reported as unverified, not as a mismatch.  Row hashes are the verifier's
(:mod:`sync_verify`).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_state
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import query
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_replicas import ReplicaUnavailable
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_keys import ranges
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_verify import MAX_KEYS, sides

RANGE_ATTEMPTS = 4      # range-level comparisons before going down to keys
KEY_ROUNDS = 10         # key-level rounds for keys that keep changing
READ_TIMEOUT = 600      # a checksum of a whole range on a busy replica may take a while
POLL = 0.05


class ReplicaVerifier(object):
    """Compare one sync entry on one replica with the primary."""

    def __init__(self, conn, db, replica, plan, replica_timeout=60.0, chunk_rows=20000, sleep=time.sleep, clock=time.time):
        self.conn = conn
        self.db = db
        self.replica = replica.copy(read_timeout=READ_TIMEOUT)
        self.plan = plan
        self.replica_timeout = float(replica_timeout)
        self.chunk_rows = max(10, int(chunk_rows))
        self.sleep = sleep
        self.clock = clock
        self.sides = sides(plan)

    # ------------------------------------------------------------ reads

    def _snapshot(self, run, statements):
        """Results of ``statements`` [(sql, args)] read in one consistent snapshot through ``run(sql, args)``."""
        run('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ')
        run('START TRANSACTION WITH CONSISTENT SNAPSHOT')
        try:
            return [run(sql, args) for sql, args in statements]
        finally:
            run('COMMIT')

    def _primary(self, statements):
        return self._snapshot(lambda sql, args=None: query(self.conn, sql, args), statements)

    def _replica(self, statements):
        started = self.clock()
        while True:
            try:
                return self._snapshot(self.replica.query, statements)
            except ReplicaUnavailable as exc:
                self._give_up_after(started, 'could not be read: %s' % exc.detail)
                self.sleep(POLL)

    def _give_up_after(self, started, what):
        if self.clock() - started > self.replica_timeout:
            raise DatabaseError('verify_replicas: replica %s %s (for more than replica_timeout=%s s)'
                                % (self.replica.label, what, self.replica_timeout))

    def _reach_primary(self):
        """Write a heartbeat on the primary and wait until the replica shows it."""
        now = self.clock()
        sync_state.beat(self.conn, self.plan.migration_id, self.plan.index, now)
        target = sync_state.beat_value(now)
        sql, args = sync_state.heartbeat_query(self.plan.migration_id, self.plan.index)
        started = self.clock()
        while True:
            try:
                rows = self.replica.query(sql, args)
                if rows and rows[0][0] is not None and int(rows[0][0]) >= target:
                    return
                what = 'did not reach the primary\'s heartbeat'
            except ReplicaUnavailable as exc:
                what = 'could not be reached: %s' % exc.detail
            self._give_up_after(started, what)
            self.sleep(POLL)

    # ------------------------------------------------------------ comparison

    def _three_reads(self, statements):
        """P1 on the primary, the replica caught up with it, R on the replica, P2 on the primary."""
        p1 = self._primary(statements)
        self._reach_primary()
        r = self._replica(statements)
        p2 = self._primary(statements)
        return p1, r, p2

    def _range_statements(self, lo, hi):
        return [side.sums_query(lo, hi) for side in self.sides]

    def _key_statements(self, lo, hi, keys):
        return [side.hashes_query(lo, hi, keys) for side in self.sides]

    @staticmethod
    def _sums_of(results):
        return tuple(tuple(int(v) for v in rows[0]) for rows in results)

    @staticmethod
    def _hashes_of(results):
        """{key: (old shape's row hash, new shape's row hash)} (None for a side without the row)."""
        found = {}
        for position, rows in enumerate(results):
            for row in rows:
                key = row[0] if len(row) == 2 else tuple(row[:-1])    # a composite key: every column but the hash
                found.setdefault(key, [None, None])[position] = int(row[-1])
        return dict((k, tuple(v)) for k, v in found.items())

    def _range(self, lo, hi):
        """(rows checked, differing keys, unverified keys) of the key range (lo, hi]."""
        statements = self._range_statements(lo, hi)
        stable_differences = 0
        checked = None
        for attempt in range(RANGE_ATTEMPTS):
            p1, r, p2 = (self._sums_of(x) for x in self._three_reads(statements))
            checked = p1[0][0] if checked is None else checked
            if r in (p1, p2):
                return checked, [], []
            if p1 == p2:
                stable_differences += 1
                if stable_differences >= 2:
                    break
            self.sleep(POLL * (attempt + 1))
        differing, unverified = self._keys(lo, hi)
        return checked, differing, unverified

    def _keys(self, lo, hi):
        keys = None
        seen_differing = {}
        confirmed = []
        for _round in range(KEY_ROUNDS):
            p1, r, p2 = (self._hashes_of(x) for x in self._three_reads(self._key_statements(lo, hi, keys)))
            candidates = [k for k in set(p1) | set(r) | set(p2) if r.get(k) not in (p1.get(k), p2.get(k))]
            remaining = []
            for key in candidates:
                if p1.get(key) == p2.get(key):
                    seen_differing[key] = seen_differing.get(key, 0) + 1
                    if seen_differing[key] >= 2:
                        confirmed.append(key)
                        continue
                remaining.append(key)
            if not remaining:
                return sorted(confirmed, key=_order), []
            keys = remaining
            self.sleep(POLL)
        return sorted(confirmed, key=_order), sorted(keys, key=_order)

    def run(self):
        key_sql, table_sql = self.sides[0].key_sql, self.sides[0].table_sql
        checked, differing, unverified = 0, [], []
        try:
            for lo, hi in list(ranges(self.conn, table_sql, key_sql, self.chunk_rows)):
                rows, bad, unknown = self._range(lo, hi)
                checked += rows
                differing.extend(bad)
                unverified.extend(unknown)
        finally:
            self.replica.close()
        return dict(rows_checked=checked, mismatches=len(differing), keys=differing[:MAX_KEYS], unverified=len(unverified),
                    unverified_keys=unverified[:MAX_KEYS])


def _order(key):
    return (str(type(key)), key)
