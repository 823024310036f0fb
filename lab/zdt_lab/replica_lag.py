"""Replica lag measured from outside the collection, for the demo and the benchmarks (pt-heartbeat's way).

A writer thread stores ``time.time()`` in one row of ``zdt_lab.heartbeat`` on the primary every ``beat``
seconds; a reader thread reads that row on the replica every ``sample`` seconds and records
``now - stored``: how old the newest primary write visible on the replica is.  With beats every 20 ms the
figure of a replica that is fully caught up reads 0-20 ms (plus the read itself), so it is an upper bound
of the lag with that resolution.  Both ends use this process's clock.
"""
import threading
import time


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


class LagMonitor(object):
    """Samples (t, lag seconds) of ``replica`` behind ``primary`` (sandbox MariaDB objects) while it runs."""

    def __init__(self, primary, replica, beat=0.02, sample=0.05):
        self.primary, self.replica = primary, replica
        self.beat, self.sample = beat, sample
        self.samples = []
        self.errors = 0
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        with self.primary.root_connect() as conn, conn.cursor() as cur:
            cur.execute('CREATE DATABASE IF NOT EXISTS zdt_lab')
            cur.execute('CREATE TABLE IF NOT EXISTS zdt_lab.heartbeat (id INT PRIMARY KEY, ts DOUBLE NOT NULL)')
            cur.execute('REPLACE INTO zdt_lab.heartbeat VALUES (1, %s)', (time.time(),))
        self.replica.wait_caught_up(60)
        for target in (self._write, self._read):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _write(self):
        conn = self.primary.root_connect()
        try:
            with conn.cursor() as cur:
                while not self._stop.wait(self.beat):
                    cur.execute('UPDATE zdt_lab.heartbeat SET ts = %s WHERE id = 1', (time.time(),))
        finally:
            conn.close()

    def _read(self):
        conn = None
        while not self._stop.wait(self.sample):
            try:
                if conn is None:
                    conn = self.replica.root_connect()
                with conn.cursor() as cur:
                    cur.execute('SELECT ts FROM zdt_lab.heartbeat WHERE id = 1')
                    stored = cur.fetchone()[0]
                now = time.time()
                self.samples.append((now, max(0.0, now - stored)))
            except Exception:  # pylint: disable=broad-except  # the replica went away for a moment: count it, go on
                self.errors += 1
                conn = None
        if conn is not None:
            conn.close()

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        return self

    def stats(self, start=None, end=None):
        """{samples, p50, p99, max} of the lag in seconds between ``start`` and ``end`` (times of time.time())."""
        lags = [lag for t, lag in self.samples if (start is None or t >= start) and (end is None or t < end)]
        return dict(samples=len(lags), p50=percentile(lags, 50), p99=percentile(lags, 99), max=max(lags) if lags else None)


def same_data(primary, replica, database):
    """Wait until ``replica`` has applied everything ``primary`` logged, then compare every table of ``database``
    (CHECKSUM TABLE ... EXTENDED); returns (equal, {table: (primary checksum, replica checksum)})."""
    replica.wait_caught_up(120)
    with primary.root_connect(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' "
                    'ORDER BY TABLE_NAME', (database,))
        tables = [row[0] for row in cur.fetchall()]
    sums = []
    for server in (primary, replica):
        with server.root_connect(database) as conn, conn.cursor() as cur:
            found = {}
            for table in tables:
                cur.execute('CHECKSUM TABLE `%s` EXTENDED' % table.replace('`', '``'))
                found[table] = cur.fetchone()[1]
            sums.append(found)
    both = dict((table, (sums[0][table], sums[1][table])) for table in tables)
    return all(a == b for a, b in both.values()), both
