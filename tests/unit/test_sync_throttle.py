"""What pauses the backfill between chunks: Threads_running, replica lag from the heartbeat, unreachable replicas (no server)."""
import pytest

from zdt_lab.traffic_fakes import FakeClock

from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_throttle as st
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_replicas import ReplicaUnavailable


def Clock():  # noqa: N802 - the shared fake clock, at t=1000
    clock = FakeClock()
    clock.now = 1000.0
    return clock


class Primary(object):
    """Answers Threads_running with the next of ``running`` and records the heartbeats written."""

    def __init__(self, running=()):
        self.running = list(running)
        self.beats = []

    def cursor(self):
        primary = self

        class Cursor(object):
            rows = ()

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def execute(self, sql, args=None):
                if sql.startswith('SHOW GLOBAL STATUS'):
                    self.rows = (('Threads_running', str(primary.running.pop(0))),)
                else:
                    assert sql.startswith('UPDATE `zdt_sync_progress` SET heartbeat')
                    primary.beats.append((args[0], args[2]))

            def fetchall(self):
                return self.rows
        return Cursor()


class Replica(object):
    """A replica whose heartbeat is ``lag_of(now)`` seconds behind the clock; ``down`` while the clock is in a window."""

    def __init__(self, clock, lag_of=lambda now: 0.0, down=(), label='db2:3306', missing=False):
        self.clock, self.lag_of, self.down, self.label, self.missing = clock, lag_of, down, label, missing
        self.reads = 0

    def query(self, sql, args=None):
        self.reads += 1
        assert sql.startswith('SELECT heartbeat FROM `zdt_sync_progress`') and args == (2, 0)
        if any(lo <= self.clock() < hi for lo, hi in self.down):
            raise ReplicaUnavailable(self.label, "Can't connect to MySQL server (111)")
        if self.missing:
            return ()
        return ((int((self.clock() - self.lag_of(self.clock())) * 1000000),),)

    def close(self):
        pass


def throttler(primary, clock, **kw):
    return st.Throttler(primary, 2, 0, sleep=clock.sleep, clock=clock, **kw)


def test_pauses_while_threads_running_is_above_the_limit():
    clock = Clock()
    t = throttler(Primary([40, 26, 25]), clock, max_threads_running=25)
    t.wait()
    assert clock.sleeps == [st.POLL, st.POLL] and t.throttled_seconds == pytest.approx(2 * st.POLL)


def test_threads_running_zero_turns_that_throttle_off():
    primary = Primary([])
    throttler(primary, Clock(), max_threads_running=0).wait()
    assert primary.beats == []


def test_no_pause_while_replicas_are_within_the_lag_limit():
    clock = Clock()
    primary = Primary()
    t = throttler(primary, clock, max_threads_running=0, replicas=[Replica(clock, lambda now: 0.4)], max_replica_lag=1.0)
    t.wait()
    assert clock.sleeps == [] and primary.beats == [] and t.max_replica_lag_seen == pytest.approx(0.4)


def test_pauses_while_a_replica_lags_more_than_the_limit_writing_heartbeats_with_the_reason():
    clock = Clock()
    primary = Primary()
    # 3 s behind at first, catching up by 0.5 s of lag per 0.1 s of pause
    replica = Replica(clock, lambda now: max(0.0, 3.0 - (now - 1000.0) * 5))
    t = throttler(primary, clock, max_threads_running=0, replicas=[replica], max_replica_lag=1.0)
    t.wait()
    assert t.throttled_seconds == pytest.approx(0.5) and t.max_replica_lag_seen == pytest.approx(3.0)
    reasons = [reason for _beat, reason in primary.beats]
    assert reasons[0] == 'replica db2:3306 lags 3.0 s, more than max_replica_lag=1.0'
    assert reasons[-1] is None    # the last heartbeat clears the pause
    assert [b for b, _r in primary.beats] == sorted(b for b, _r in primary.beats)


def test_the_slowest_of_several_replicas_decides():
    clock = Clock()
    fast, slow = Replica(clock, label='r1:1'), Replica(clock, lambda now: 2.0 if now < 1000.5 else 0.2, label='r2:2')
    t = throttler(Primary(), clock, max_threads_running=0, replicas=[fast, slow], max_replica_lag=1.5)
    t.wait()
    assert t.throttled_seconds == pytest.approx(0.5) and fast.reads == slow.reads


def test_an_unreachable_replica_pauses_the_copy_then_it_goes_on():
    clock = Clock()
    primary = Primary()
    t = throttler(primary, clock, max_threads_running=0, replicas=[Replica(clock, down=[(0, 1002.0)])], replica_timeout=5)
    t.wait()
    assert t.throttled_seconds == pytest.approx(2.0)
    assert primary.beats[0][1].startswith('replica db2:3306 is unreachable (for 0.0 s; replica_timeout=5')


def test_an_unreachable_replica_fails_after_replica_timeout():
    clock = Clock()
    t = throttler(Primary(), clock, max_threads_running=0, replicas=[Replica(clock, down=[(0, 10 ** 9)])], replica_timeout=3)
    with pytest.raises(st.ReplicaTimeout, match=r'unreachable for 3 s \(replica_timeout=3.0\).*resumes where it stopped'):
        t.wait()
    assert 3.0 <= clock.now - 1000.0 <= 3.0 + 2 * st.POLL


def test_an_outage_is_timed_from_its_start_not_from_the_first_one():
    clock = Clock()
    replica = Replica(clock, down=[(0, 1002.0), (1003.0, 1005.0)])
    t = throttler(Primary(), clock, max_threads_running=0, replicas=[replica], replica_timeout=2.5)
    t.wait()
    clock.now = 1003.0
    t.wait()
    assert t.throttled_seconds == pytest.approx(4.0)


def test_a_replica_that_never_shows_the_heartbeat_fails_after_replica_timeout():
    clock = Clock()
    t = throttler(Primary(), clock, max_threads_running=0, replicas=[Replica(clock, missing=True)], max_replica_lag=1.0, replica_timeout=4)
    t.wait()                  # the first chunk: the lag counts from now
    clock.now += 0.5          # ... it ran
    t.wait()                  # 0.5 s: within max_replica_lag
    clock.now += 0.7
    with pytest.raises(st.ReplicaTimeout, match='shown no heartbeat of the backfill for 4 s'):
        t.wait()              # 1.2 s: it pauses, and fails when the 4 s are over
    assert 4.0 < clock.now - 1000.0 <= 4.0 + st.POLL + 1e-9


class LostConnection(Exception):
    """Stands for pymysql.err.OperationalError(2013, ...)."""


LostConnection.__module__ = 'pymysql.err'


def test_replica_connections_tell_unreachable_from_refused():
    from ansible_collections.zdt.bluegreen.plugins.module_utils import mysql_replicas as mr
    from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ConnectionFailed, DatabaseError

    class Conn(object):
        def __init__(self, exc):
            self.exc = exc

        def cursor(self):
            raise self.exc

        def close(self):
            pass

    def replica(connect_exc=None, query_exc=None):
        def connect_fn(params, read_timeout=None):
            assert read_timeout == 3 and params['connect_timeout'] == 3
            if connect_exc:
                raise connect_exc
            return Conn(query_exc)
        [r] = mr.replicas_from_params(dict(login_host='db1', login_port=3306, connect_timeout=30, database='app'),
                                      [dict(login_host='db2')], replica_timeout=3, connect_fn=connect_fn)
        return r

    with pytest.raises(ReplicaUnavailable, match='db2:3306 cannot be reached'):
        replica(connect_exc=ConnectionFailed('refused', 2003)).query('SELECT 1')
    with pytest.raises(ReplicaUnavailable):
        replica(query_exc=LostConnection(2013, 'Lost connection to MySQL server during query (timed out)')).query('SELECT 1')
    with pytest.raises(ReplicaUnavailable):
        replica(query_exc=LostConnection(0, '')).query('SELECT 1')
    with pytest.raises(DatabaseError, match='replica db2:3306: access denied') as err:
        replica(connect_exc=ConnectionFailed('access denied for user x', 1045)).query('SELECT 1')
    assert not isinstance(err.value, ReplicaUnavailable)
    with pytest.raises(TypeError):           # a bug is no outage
        replica(query_exc=TypeError('bug')).query('SELECT 1')
