"""Unit tests of zdt_lab.loadgen (tools/loadgen.py): recording, scheduling, and the lost-write verifier (on SQLite in both shapes)."""
import json
import sqlite3

import pytest

from zdt_lab import loadgen


def state(name, email='e@x', line1=None, line2=None):
    return {'name': name, 'email': email, 'address_line_1': line1, 'address_line_2': line2}


class SqliteConn:
    """Just enough of a PyMySQL connection for verify(): cursor() as a context manager, %s placeholders."""

    def __init__(self, shape):
        self.db = sqlite3.connect(':memory:')
        if shape == 'v1':
            self.db.execute('CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, address_line_1 TEXT, '
                            'address_line_2 TEXT)')
        else:
            self.db.execute('CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT)')
        self.db.execute('CREATE TABLE addresses (id INTEGER PRIMARY KEY, user_id INTEGER, address_line_1 TEXT, '
                        'address_line_2 TEXT)')

    def execute(self, sql, args=()):
        self.db.execute(sql, args)

    def cursor(self):
        return SqliteCursor(self.db.cursor())


class SqliteCursor:
    def __init__(self, cur):
        self.cur = cur

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, args=()):
        return self.cur.execute(sql.replace('%s', '?'), list(args))

    def fetchall(self):
        return self.cur.fetchall()

    def fetchone(self):
        return self.cur.fetchone()


def record(recorder, user_id, *states):
    """Acknowledge a sequence of states for one user (the last one counts)."""
    for st in states:
        recorder.acknowledged(user_id, st, '1', recorder.started + 1)


def test_percentile_nearest_rank():
    assert loadgen.percentile([], 0.5) is None
    assert loadgen.percentile([3, 1, 2], 0.5) == 2
    assert loadgen.percentile(list(range(1, 101)), 0.99) == 99
    assert loadgen.percentile([5], 0.99) == 5


def test_recorder_counts_failures_versions_and_timeline():
    now = [1000.0]
    rec = loadgen.Recorder(clock=lambda: now[0])
    rec.request('list', 1000.2, 0.001, '1')
    rec.request('list', 1000.7, 0.003, '2')
    rec.request('create', 1001.1, 0.5, None, failure='connect', detail='refused')
    rec.request('update', 1001.5, 0.002, '2', failure='http_502')
    now[0] = 1002.0
    report = rec.report()
    assert (report['requests'], report['ok'], report['failed']) == (4, 2, 2)
    assert report['failures'] == {'connect': 1, 'http_502': 1}
    assert report['versions'] == {'1': 1, '2': 2}
    assert report['timeline'] == [{'t': 0, 'v1': 1, 'v2': 1}, {'t': 1, 'errors': 2, 'v2': 1}]
    assert report['latency_ms']['p50'] == 1.0 and report['latency_ms']['max'] == 3.0
    assert report['by_op']['create'] == {'requests': 1, 'failed': 1, 'p50_ms': None, 'p99_ms': None}


def test_recorder_tracks_last_acknowledged_state_and_uncertain_writes():
    rec = loadgen.Recorder()
    record(rec, 5, state('a'), state('b'))
    record(rec, 6, state('c'), loadgen.DELETED)
    record(rec, 7, state('d'))
    rec.uncertain(7, loadgen.DELETED)
    report = rec.report()
    assert report['writes'] == {'create': 3, 'update': 1, 'delete': 1, 'adopt': 0, 'acknowledged': 5, 'uncertain': 1}
    assert report['users']['5']['expected'] == [state('b')]
    assert report['users']['6']['expected'] == [None]
    assert report['users']['7']['expected'] == [state('d'), None]


def _v1_db(rows):
    conn = SqliteConn('v1')
    for row in rows:
        conn.execute('INSERT INTO users VALUES (?, ?, ?, ?, ?)', row)
    return conn


def test_verify_v1_shape_passes_when_every_acknowledged_write_is_there():
    rec = loadgen.Recorder()
    record(rec, 1, state('a', line1='1 Main'), state('a2', line1='2 Main', line2='Apt 3'))
    record(rec, 2, state('b'), loadgen.DELETED)
    record(rec, 3, state('c'))
    conn = _v1_db([(1, 'a2', 'e@x', '2 Main', 'Apt 3'), (3, 'c', 'e@x', None, None), (4, 'not ours', 'e@x', None, None)])
    result = loadgen.verify(conn, rec.report()['users'], 'v1')
    assert result['lost_writes'] == 0 and result['checked'] == 3 and result['lost'] == []


def test_verify_detects_every_kind_of_lost_write():
    rec = loadgen.Recorder()
    record(rec, 1, state('a', line1='1 Main'), state('a2', line1='2 Main'))   # stale value in the db
    record(rec, 2, state('b'), loadgen.DELETED)                                # deleted but present
    record(rec, 3, state('c', line1='x'))                                       # acknowledged but absent
    record(rec, 4, state('d', line1='y'))                                       # fine
    conn = _v1_db([(1, 'a', 'e@x', '1 Main', None), (2, 'b', 'e@x', None, None), (4, 'd', 'e@x', 'y', None)])
    result = loadgen.verify(conn, rec.report()['users'], 'v1')
    assert result['lost_writes'] == 3
    assert {item['id']: item['kind'] for item in result['lost']} == {1: 'different', 2: 'resurrected', 3: 'missing'}
    stale = [item for item in result['lost'] if item['id'] == 1][0]
    assert stale['expected'] == [state('a2', line1='2 Main')] and stale['actual'] == state('a', line1='1 Main')


def test_verify_accepts_either_outcome_of_an_unacknowledged_write():
    rec = loadgen.Recorder()
    record(rec, 1, state('a'))
    rec.uncertain(1, state('a-maybe'))
    record(rec, 2, state('b'))
    rec.uncertain(2, loadgen.DELETED)
    conn = _v1_db([(1, 'a-maybe', 'e@x', None, None)])
    assert loadgen.verify(conn, rec.report()['users'], 'v1')['lost_writes'] == 0


def test_verify_v2_shape_reads_addresses_table():
    rec = loadgen.Recorder()
    record(rec, 1, state('a', line1='1 Main', line2='Apt 1'))
    record(rec, 2, state('b'))                                   # no address: no addresses row
    record(rec, 3, state('c', line1='3 Main'))                   # address row lost
    record(rec, 4, state('d'))                                   # an address appeared from nowhere
    record(rec, 5, state('e', line1='5 Main'))                   # two rows where one was written
    conn = SqliteConn('v2')
    for user_id, name in [(1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e')]:
        conn.execute('INSERT INTO users VALUES (?, ?, ?)', (user_id, name, 'e@x'))
    for row in [(10, 1, '1 Main', 'Apt 1'), (11, 4, 'ghost', None), (12, 5, '5 Main', None), (13, 5, 'extra', None)]:
        conn.execute('INSERT INTO addresses VALUES (?, ?, ?, ?)', row)
    result = loadgen.verify(conn, rec.report()['users'], 'v2')
    assert sorted(item['id'] for item in result['lost']) == [3, 4, 5]
    assert result['lost_writes'] == 3


def test_verify_both_shapes_after_rollback():
    rec = loadgen.Recorder()
    record(rec, 1, state('a', line1='1 Main'))
    conn = _v1_db([(1, 'a', 'e@x', '1 Main', None)])
    conn.execute('INSERT INTO addresses VALUES (?, ?, ?, ?)', (1, 1, 'stale', None))
    result = loadgen.verify(conn, rec.report()['users'], 'both')
    assert result['lost_writes'] == 1 and result['lost'][0]['schema'] == 'v2'


def test_detect_schema():
    class Cur:
        def __init__(self, count):
            self.count = count

        def execute(self, sql, args=None):
            assert 'information_schema.COLUMNS' in sql

        def fetchone(self):
            return (self.count,)
    assert loadgen.detect_schema(Cur(2)) == 'v1'
    assert loadgen.detect_schema(Cur(0)) == 'v2'


def test_summary_has_the_exact_lines():
    rec = loadgen.Recorder()
    rec.request('list', rec.started, 0.002, '1')
    rec.request('list', rec.started, 0.002, None, failure='read')
    record(rec, 1, state('a'))
    report = rec.report()
    lines = loadgen.summary_lines(report)
    assert 'failed requests: 1' in lines and 'lost writes: not verified' in lines
    report['verify'] = loadgen.verify(_v1_db([]), report['users'], 'v1')
    lines = loadgen.summary_lines(report)
    assert 'lost writes: 1' in lines
    assert any(line.startswith('  lost: user 1 missing') for line in lines)
    json.dumps(report)   # the report is plain JSON


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_scheduler_paces_and_caps():
    clock = FakeClock()
    sched = loadgen.Scheduler(rate=10, max_requests=3, clock=clock)
    assert [sched.next_slot() for _unused in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    assert sched.next_slot() is None and sched.stopped


def test_scheduler_duration_skips_backlog_and_stop():
    clock = FakeClock()
    sched = loadgen.Scheduler(rate=100, duration=10, clock=clock, max_lag=0.5)
    assert sched.next_slot() == 0.0
    clock.now = 5.0                      # workers stalled for 5 s: no burst of 500 requests
    slot = sched.next_slot()
    assert slot >= 4.5 and sched.skipped >= 440
    clock.now = 10.0
    assert sched.next_slot() is None
    other = loadgen.Scheduler(rate=100, clock=clock)
    other.stop()
    assert other.next_slot() is None


def test_scheduler_stop_file(tmp_path):
    clock = FakeClock()
    flag = tmp_path / 'stop'
    sched = loadgen.Scheduler(rate=10, stop_file=str(flag), clock=clock)
    assert sched.next_slot() is not None
    flag.write_text('')
    clock.now = 1.0
    assert sched.next_slot() is None


def test_parse_mix_and_url():
    assert loadgen.parse_mix('list=1,create=2') == {'list': 1.0, 'create': 2.0}
    with pytest.raises(Exception):
        loadgen.parse_mix('explode=1')
    with pytest.raises(ValueError):
        loadgen.LoadGenerator('https://example.test')
