"""Load generator and lost-write verifier for the zdt.bluegreen sample service.

``run`` sends reads and writes through a URL (normally the HAProxy frontend) at a steady, bounded
rate until --duration passes, --max-requests are sent, the --stop-file appears, or SIGTERM/SIGINT.
It records every acknowledged write (user id -> the state the last acknowledged write left), the
X-App-Version of every response, failures by kind, latencies and per-second counts per version.

``verify`` reads the final database and checks, row by row, that every acknowledged write is there
as it was acknowledged: a user created or updated must exist with exactly those values, a deleted
user must be absent.  Addresses are read from users.address_line_1/2 when the final schema still
has them (v1 shape), otherwise from the addresses table (contracted v2 shape).

A write whose outcome is unknown (the request failed after it was sent) is not "acknowledged": the
row may hold the state before or after it, both pass, and the generator stops touching that user.

    loadgen.py run --url http://127.0.0.1:8000 --rate 200 --duration 60 --report load.json
    loadgen.py verify --report load.json --db-name app        # DB_* environment or --db-* options
    loadgen.py summary --report load.json

The summary has the exact lines ``failed requests: N`` and ``lost writes: N``; ``verify`` exits 1
when either is not 0.
"""
import argparse
import http.client
import json
import math
import os
import random
import signal
import socket
import string
import sys
import threading
import time
from urllib.parse import urlsplit

DELETED = None
STATE_FIELDS = ('name', 'email', 'address_line_1', 'address_line_2')
DEFAULT_MIX = {'list': 30, 'health': 10, 'get': 10, 'create': 25, 'update': 20, 'delete': 5, 'adopt': 0}
# With --existing N, the share of operations that take over a pre-existing user (ids below N) and update it:
# rows the backfill copies are then written while it copies them.
ADOPT_WEIGHT = 10
WRITE_OPS = ('create', 'update', 'delete', 'adopt')
MAX_LATENCIES = 2000000


# ---------------------------------------------------------------- recording

def percentile(values, fraction):
    """Nearest-rank percentile of a list (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(math.ceil(fraction * len(ordered))) - 1))
    return ordered[index]


def state_of(fields):
    """The comparable state of a user: a dict with exactly STATE_FIELDS."""
    return {name: fields.get(name) for name in STATE_FIELDS}


class Recorder:
    """Thread-safe record of requests, failures, versions over time and acknowledged writes."""

    # pylint: disable=too-many-instance-attributes

    def __init__(self, clock=time.time):
        self.clock = clock
        self.started = clock()
        self.ended = None
        self._lock = threading.Lock()
        self.requests = 0
        self.ok = 0
        self.failures = {}
        self.failure_samples = []
        self.latencies = []
        self.by_op = {}
        self.versions = {}
        self.timeline = {}
        self.writes = {'create': 0, 'update': 0, 'delete': 0, 'adopt': 0}
        self.uncertain_writes = 0
        self.read_mismatches = 0
        self.users = {}

    def _second(self, when):
        return int(when - self.started)

    def request(self, op, when, latency, version, failure=None, detail=None):
        """One finished request: failure is None (success) or a kind: connect, read, timeout, http_<status>."""
        with self._lock:
            self.requests += 1
            stats = self.by_op.setdefault(op, {'requests': 0, 'failed': 0, 'latencies': []})
            stats['requests'] += 1
            bucket = self.timeline.setdefault(self._second(when), {})
            if version:
                self.versions[version] = self.versions.get(version, 0) + 1
                bucket['v' + version] = bucket.get('v' + version, 0) + 1
            if failure is None:
                self.ok += 1
                if len(self.latencies) < MAX_LATENCIES:
                    self.latencies.append(latency)
                    stats['latencies'].append(latency)
            else:
                stats['failed'] += 1
                self.failures[failure] = self.failures.get(failure, 0) + 1
                bucket['errors'] = bucket.get('errors', 0) + 1
                if len(self.failure_samples) < 50:
                    self.failure_samples.append({'t': round(when - self.started, 3), 'op': op, 'kind': failure,
                                                 'version': version, 'detail': detail})

    def acknowledged(self, user_id, state, version, when, op=None):
        """A write was acknowledged: the row must now be ``state`` (DELETED for a delete)."""
        with self._lock:
            record = self.users.setdefault(user_id, {})
            op = op or ('create' if not record else ('delete' if state is DELETED else 'update'))
            self.writes[op] += 1
            record.update({'expected': [state], 'version': version, 'acked_at': round(when - self.started, 3)})

    def uncertain(self, user_id, attempted):
        """A write to a known user failed after it may have reached the server: either state is fine."""
        with self._lock:
            self.uncertain_writes += 1
            record = self.users.get(user_id)
            if record is not None and attempted not in record['expected']:
                record['expected'].append(attempted)

    def read_mismatch(self):
        with self._lock:
            self.read_mismatches += 1

    def report(self):
        with self._lock:
            ended = self.ended or self.clock()
            failed = self.requests - self.ok
            timeline = [dict({'t': second}, **counts) for second, counts in sorted(self.timeline.items())]
            by_op = {}
            for op, stats in sorted(self.by_op.items()):
                by_op[op] = {'requests': stats['requests'], 'failed': stats['failed'],
                             'p50_ms': _ms(percentile(stats['latencies'], 0.50)),
                             'p99_ms': _ms(percentile(stats['latencies'], 0.99))}
            return {
                'started_at': self.started, 'ended_at': ended, 'seconds': round(ended - self.started, 3),
                'requests': self.requests, 'ok': self.ok, 'failed': failed,
                'failures': dict(sorted(self.failures.items())), 'failure_samples': list(self.failure_samples),
                'latency_ms': {'p50': _ms(percentile(self.latencies, 0.50)), 'p90': _ms(percentile(self.latencies, 0.90)),
                               'p99': _ms(percentile(self.latencies, 0.99)),
                               'max': _ms(max(self.latencies) if self.latencies else None)},
                'by_op': by_op,
                'versions': dict(sorted(self.versions.items())),
                'timeline': timeline,
                'writes': dict(self.writes, acknowledged=sum(self.writes.values()), uncertain=self.uncertain_writes),
                'read_mismatches': self.read_mismatches,
                'users': {str(uid): dict(rec) for uid, rec in sorted(self.users.items())},
            }


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000.0, 3)


# ---------------------------------------------------------------- scheduling

class Scheduler:
    """Hands out request slots at ``rate`` per second, bounded by count, time, a stop file and stop().

    A worker that falls behind does not cause a burst: slots more than ``max_lag`` seconds late are skipped.
    """

    def __init__(self, rate, duration=None, max_requests=None, stop_file=None, max_lag=0.5, clock=time.monotonic):
        if rate <= 0:
            raise ValueError('rate must be > 0')
        self.interval = 1.0 / rate
        self.clock = clock
        self.start = clock()
        self.deadline = None if duration is None else self.start + duration
        self.max_requests = max_requests
        self.stop_file = stop_file
        self.max_lag = max_lag
        self.issued = 0
        self.skipped = 0
        self._next = self.start
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._stop_file_checked = 0.0

    def stop(self):
        self._stopped.set()

    @property
    def stopped(self):
        return self._stopped.is_set()

    def _should_stop(self, now):
        if self._stopped.is_set():
            return True
        if self.max_requests is not None and self.issued >= self.max_requests:
            return True
        if self.deadline is not None and now >= self.deadline:
            return True
        if self.stop_file and now - self._stop_file_checked >= 0.1:
            self._stop_file_checked = now
            if os.path.exists(self.stop_file):
                return True
        return False

    def next_slot(self):
        """The monotonic time at which the caller sends its next request, or None when the run is over."""
        with self._lock:
            now = self.clock()
            if self._should_stop(now):
                self._stopped.set()
                return None
            if self._next < now - self.max_lag:
                missed = int((now - self.max_lag - self._next) / self.interval)
                self.skipped += missed
                self._next += missed * self.interval
            slot = self._next
            if self.deadline is not None and slot >= self.deadline:
                self._stopped.set()
                return None
            self._next += self.interval
            self.issued += 1
            return slot

    def wait(self, slot):
        """Sleep until slot (returns early on stop)."""
        delay = slot - self.clock()
        if delay > 0:
            self._stopped.wait(delay)


# ---------------------------------------------------------------- the generator

class HTTPFailure(Exception):
    def __init__(self, kind, detail, version=None):
        super().__init__('%s: %s' % (kind, detail))
        self.kind = kind
        self.detail = detail
        self.version = version


class Client:
    """One keep-alive HTTP/1.1 connection (http.client), reopened after any failure or a long idle."""

    def __init__(self, host, port, timeout=10.0, max_idle=4.0):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_idle = max_idle
        self.conn = None
        self.last_used = 0.0

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None):
        """Return (status, version, json-or-None).  Raises HTTPFailure(connect|read|timeout) on transport errors."""
        if self.conn is not None and time.monotonic() - self.last_used > self.max_idle:
            self.close()   # do not race the server's keep-alive timeout
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.connect()
                self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except socket.timeout as exc:
                self.close()
                raise HTTPFailure('connect', 'timeout: %s' % exc) from None
            except OSError as exc:
                self.close()
                raise HTTPFailure('connect', '%s: %s' % (type(exc).__name__, exc)) from None
        payload = None
        headers = {'Accept': 'application/json'}
        if body is not None:
            payload = json.dumps(body).encode('utf-8')
            headers['Content-Type'] = 'application/json'
        try:
            self.conn.request(method, path, body=payload, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
        except socket.timeout as exc:
            self.close()
            raise HTTPFailure('timeout', '%s %s: %s' % (method, path, exc)) from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise HTTPFailure('read', '%s %s: %s: %s' % (method, path, type(exc).__name__, exc)) from None
        self.last_used = time.monotonic()
        if response.will_close:
            self.close()
        version = response.getheader('X-App-Version')
        parsed = None
        if data:
            try:
                parsed = json.loads(data.decode('utf-8'))
            except ValueError:
                parsed = None
        return response.status, version, parsed


def _text(rng, length):
    return ''.join(rng.choice(string.ascii_lowercase) for _unused in range(length))


class LoadGenerator:
    """Workers share a Scheduler and a Recorder; each worker owns the users it created (no two workers race)."""

    # pylint: disable=too-many-instance-attributes,too-many-arguments

    def __init__(self, url, rate=200.0, duration=None, max_requests=None, workers=8, stop_file=None, mix=None,
                 seed=None, timeout=10.0, max_owned=2000, existing=None):
        parts = urlsplit(url)
        if parts.scheme != 'http' or not parts.hostname:
            raise ValueError('url must be http://host:port, got %r' % url)
        self.host = parts.hostname
        self.port = parts.port or 80
        self.rate = rate
        self.duration = duration
        if max_requests is None:
            max_requests = int(rate * duration * 1.05) + 1 if duration else 10000000
        self.max_requests = max_requests
        self.workers = workers
        self.stop_file = stop_file
        self.mix = dict(mix or DEFAULT_MIX)
        # users that existed before the run (ids below ``existing``) that a worker may take over
        self.existing = int(existing) if existing else None
        if self.existing and mix is None:
            self.mix['adopt'] = ADOPT_WEIGHT
        self._claimed = set()
        self._claim_lock = threading.Lock()
        self.seed = random.randrange(1 << 30) if seed is None else seed
        self.timeout = timeout
        self.max_owned = max_owned
        self.recorder = Recorder()
        self.scheduler = None
        self._threads = []

    # ---- lifecycle

    def start(self):
        self.recorder = Recorder()
        self.scheduler = Scheduler(self.rate, self.duration, self.max_requests, self.stop_file)
        self._threads = [threading.Thread(target=self._worker, args=(n,), name='loadgen-%d' % n, daemon=True)
                         for n in range(self.workers)]
        for thread in self._threads:
            thread.start()

    def stop(self):
        if self.scheduler is not None:
            self.scheduler.stop()

    def join(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self.recorder.ended = self.recorder.clock()

    def run(self):
        self.start()
        self.join()
        return self.report()

    def report(self):
        result = self.recorder.report()
        result.update({'url': 'http://%s:%d' % (self.host, self.port), 'rate': self.rate, 'workers': self.workers,
                       'mix': self.mix, 'seed': self.seed,
                       'skipped_slots': self.scheduler.skipped if self.scheduler else 0})
        return result

    # ---- the work

    def _worker(self, number):
        rng = random.Random('%s-%d' % (self.seed, number))
        client = Client(self.host, self.port, timeout=self.timeout)
        owned = []
        ops = list(self.mix)
        weights = [self.mix[op] for op in ops]
        tag = '%x%d' % (self.seed & 0xffff, number)
        counter = [0]
        try:
            while True:
                slot = self.scheduler.next_slot()
                if slot is None:
                    return
                self.scheduler.wait(slot)
                op = rng.choices(ops, weights)[0]
                if op in ('update', 'delete', 'get') and not owned:
                    op = 'create'
                if op == 'adopt' and (not self.existing or len(owned) >= self.max_owned):
                    op = 'create' if not owned else 'update'
                if op == 'create' and len(owned) >= self.max_owned:
                    op = 'update'
                getattr(self, '_op_' + op)(client, rng, owned, tag, counter)
        finally:
            client.close()

    def _call(self, client, op, method, path, body=None, expect=(200,)):
        """Send one request and record it; return (ok, version, json, failed_after_send)."""
        started = time.monotonic()
        when = time.time()
        try:
            status, version, data = client.request(method, path, body)
        except HTTPFailure as exc:
            self.recorder.request(op, when, time.monotonic() - started, exc.version, failure=exc.kind, detail=exc.detail)
            return False, None, None, exc.kind != 'connect'
        latency = time.monotonic() - started
        if status not in expect:
            detail = data.get('error') if isinstance(data, dict) else None
            self.recorder.request(op, when, latency, version, failure='http_%d' % status, detail=detail)
            return False, version, data, True
        self.recorder.request(op, when, latency, version)
        return True, version, data, False

    @staticmethod
    def _new_address(rng):
        roll = rng.random()
        if roll < 0.05:
            return None, None
        if roll < 0.15:
            return '%d %s street' % (rng.randrange(1, 999), _text(rng, 6)), None
        return '%d %s street' % (rng.randrange(1, 999), _text(rng, 6)), 'apt %d' % rng.randrange(1, 99)

    def _op_list(self, client, rng, owned, tag, counter):  # pylint: disable=unused-argument
        self._call(client, 'list', 'GET', '/api/users?limit=20&after=%d' % rng.randrange(0, 1000))

    def _op_health(self, client, rng, owned, tag, counter):  # pylint: disable=unused-argument
        self._call(client, 'health', 'GET', '/health')

    def _op_get(self, client, rng, owned, tag, counter):  # pylint: disable=unused-argument
        user_id = rng.choice(owned)
        ok, _version, data, _sent = self._call(client, 'get', 'GET', '/api/users/%d' % user_id)
        if ok:
            expected = self.recorder.users.get(user_id, {}).get('expected', [])
            if not isinstance(data, dict) or state_of(data) not in expected:
                self.recorder.read_mismatch()

    def _op_create(self, client, rng, owned, tag, counter):  # pylint: disable=unused-argument
        counter[0] += 1
        line1, line2 = self._new_address(rng)
        body = {'name': 'lg %s %d' % (tag, counter[0]), 'email': '%s.%d@example.test' % (tag, counter[0]),
                'address_line_1': line1, 'address_line_2': line2}
        ok, version, data, _sent = self._call(client, 'create', 'POST', '/api/users', body, expect=(200, 201))
        if not ok:
            return   # no id: an unacknowledged create is not tracked
        if not isinstance(data, dict) or not isinstance(data.get('id'), int):
            self.recorder.request('create', time.time(), 0.0, version, failure='bad_response', detail=str(data)[:200])
            return
        self.recorder.acknowledged(data['id'], state_of(body), version, time.time())
        if state_of(data) != state_of(body):
            self.recorder.read_mismatch()
        owned.append(data['id'])

    def _claim(self, user_id):
        """Each user has one writer: a worker takes over a pre-existing user only if nobody else has."""
        with self._claim_lock:
            if user_id in self._claimed or user_id in self.recorder.users:
                return False
            self._claimed.add(user_id)
            return True

    def _op_adopt(self, client, rng, owned, tag, counter):  # pylint: disable=unused-argument
        """Take over a user the generator did not create: read it, then write a new address with a full PUT."""
        user_id = rng.randrange(1, self.existing)
        if not self._claim(user_id):
            return
        ok, _version, data, _sent = self._call(client, 'adopt', 'GET', '/api/users/%d' % user_id, expect=(200, 404))
        if not ok or not isinstance(data, dict) or data.get('id') != user_id:
            return   # gone (404) or not readable: leave it alone
        body = state_of(data)
        body['address_line_1'], body['address_line_2'] = self._new_address(rng)
        ok, version, data, sent = self._call(client, 'adopt', 'PUT', '/api/users/%d' % user_id, body)
        if ok:
            self.recorder.acknowledged(user_id, state_of(body), version, time.time(), op='adopt')
            if not isinstance(data, dict) or state_of(data) != state_of(body):
                self.recorder.read_mismatch()
            owned.append(user_id)
        elif sent:
            self.recorder.uncertain(user_id, state_of(body))

    def _op_update(self, client, rng, owned, tag, counter):  # pylint: disable=unused-argument
        user_id = rng.choice(owned)
        current = self.recorder.users[user_id]['expected'][0]
        body = dict(current)
        roll = rng.random()
        if roll < 0.4:
            body['name'] = 'lg %s %d u%d' % (tag, user_id, rng.randrange(1000))
        elif roll < 0.6:
            body['email'] = 'u%d.%s@example.test' % (rng.randrange(1000), tag)
        else:
            body['address_line_1'], body['address_line_2'] = self._new_address(rng)
        method = 'PUT' if rng.random() < 0.7 else 'PATCH'
        payload = body if method == 'PUT' else {k: v for k, v in body.items() if v != current[k]} or {'name': body['name']}
        ok, version, data, sent = self._call(client, 'update', method, '/api/users/%d' % user_id, payload)
        if ok:
            self.recorder.acknowledged(user_id, state_of(body), version, time.time())
            if not isinstance(data, dict) or state_of(data) != state_of(body):
                self.recorder.read_mismatch()
        elif sent:
            self.recorder.uncertain(user_id, state_of(body))
            owned.remove(user_id)

    def _op_delete(self, client, rng, owned, tag, counter):  # pylint: disable=unused-argument
        user_id = rng.choice(owned)
        ok, version, _data, sent = self._call(client, 'delete', 'DELETE', '/api/users/%d' % user_id)
        if ok:
            self.recorder.acknowledged(user_id, DELETED, version, time.time())
            owned.remove(user_id)
        elif sent:
            self.recorder.uncertain(user_id, DELETED)
            owned.remove(user_id)


# ---------------------------------------------------------------- verification

def detect_schema(cursor):
    """'v1' when users still has the address columns, else 'v2' (addresses table)."""
    cursor.execute("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                   "AND TABLE_NAME = 'users' AND COLUMN_NAME IN ('address_line_1', 'address_line_2')")
    return 'v1' if cursor.fetchone()[0] == 2 else 'v2'


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def read_states(cursor, user_ids, schema):
    """{user_id: state or DELETED} as the database holds them, read in the given shape.

    In the v2 shape a user has no address when it has no addresses row; one row gives its lines; a
    state with more than one row is reported with the key ``addresses`` (never equal to an expected state).
    """
    found = {}
    for chunk in _chunks(sorted(user_ids), 1000):
        marks = ', '.join(['%s'] * len(chunk))
        if schema == 'v1':
            cursor.execute('SELECT id, name, email, address_line_1, address_line_2 FROM users WHERE id IN (%s)' % marks, chunk)
            for user_id, name, email, line1, line2 in cursor.fetchall():
                found[user_id] = {'name': name, 'email': email, 'address_line_1': line1, 'address_line_2': line2}
            continue
        cursor.execute('SELECT id, name, email FROM users WHERE id IN (%s)' % marks, chunk)
        for user_id, name, email in cursor.fetchall():
            found[user_id] = {'name': name, 'email': email, 'address_line_1': None, 'address_line_2': None}
        cursor.execute('SELECT user_id, address_line_1, address_line_2 FROM addresses WHERE user_id IN (%s) ORDER BY id'
                       % marks, chunk)
        rows = {}
        for user_id, line1, line2 in cursor.fetchall():
            rows.setdefault(user_id, []).append([line1, line2])
        for user_id, addresses in rows.items():
            state = found.get(user_id)
            if state is None:
                found[user_id] = {'orphan_addresses': addresses}
            elif len(addresses) == 1 and addresses[0] != [None, None]:
                state['address_line_1'], state['address_line_2'] = addresses[0]
            else:
                state['addresses'] = addresses
    return {user_id: found.get(user_id, DELETED) for user_id in user_ids}


def compare(users, actual_by_id, schema):
    """Lost writes: acknowledged states the database does not hold.  ``users`` as in the report."""
    lost = []
    for key, record in users.items():
        user_id = int(key)
        actual = actual_by_id.get(user_id, DELETED)
        if actual in record['expected']:
            continue
        expected = record['expected'][0]
        if expected is DELETED:
            kind = 'resurrected'
        elif actual is DELETED:
            kind = 'missing'
        else:
            kind = 'different'
        lost.append({'id': user_id, 'kind': kind, 'schema': schema, 'expected': record['expected'], 'actual': actual,
                     'version': record.get('version'), 'acked_at': record.get('acked_at')})
    return lost


def verify(db_conn, users, final_schema=None):
    """Check every acknowledged write against the database.

    ``users``: the report's ``users`` mapping ({id: {"expected": [state or None, ...], ...}}).
    ``final_schema``: 'v1' (address columns on users), 'v2' (addresses table), 'both' (check both shapes,
    e.g. after a rollback with the expanded schema) or None to detect.  Returns a dict with
    ``lost_writes`` (a count), ``lost`` (up to 50 details), ``checked`` and ``schema``.
    """
    ids = [int(key) for key in users]
    with db_conn.cursor() as cursor:
        schema = final_schema or detect_schema(cursor)
        shapes = ['v1', 'v2'] if schema == 'both' else [schema]
        lost = []
        for shape in shapes:
            lost.extend(compare(users, read_states(cursor, ids, shape), shape))
    lost_ids = sorted({item['id'] for item in lost})
    return {'schema': schema, 'checked': len(ids), 'lost_writes': len(lost_ids),
            'lost_by_kind': _count(item['kind'] for item in lost), 'lost': lost[:50]}


def _count(items):
    counts = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


# ---------------------------------------------------------------- reporting

def summary_lines(report):
    lines = []
    total = report.get('requests', 0)
    lines.append('requests: %d (ok %d) in %.1f s, target rate %s/s' % (total, report.get('ok', 0), report.get('seconds', 0.0),
                                                                       report.get('rate')))
    lines.append('failed requests: %d' % report.get('failed', 0))
    if report.get('failures'):
        lines.append('failures by kind: ' + ', '.join('%s %d' % item for item in sorted(report['failures'].items())))
    lat = report.get('latency_ms') or {}
    lines.append('latency: p50 %s ms, p90 %s ms, p99 %s ms, max %s ms' % (lat.get('p50'), lat.get('p90'), lat.get('p99'),
                                                                          lat.get('max')))
    versions = report.get('versions') or {}
    served = sum(versions.values()) or 1
    shares = ['v%s %d (%.1f%%)' % (v, n, 100.0 * n / served) for v, n in sorted(versions.items())]
    lines.append('served by version: ' + (', '.join(shares) or 'none'))
    writes = report.get('writes') or {}
    lines.append('writes acknowledged: %d (create %d, update %d, delete %d, update of a pre-existing user %d); outcome unknown: %d'
                 % (writes.get('acknowledged', 0), writes.get('create', 0), writes.get('update', 0),
                    writes.get('delete', 0), writes.get('adopt', 0), writes.get('uncertain', 0)))
    if report.get('read_mismatches'):
        lines.append('reads not matching the last acknowledged write: %d' % report['read_mismatches'])
    result = report.get('verify')
    if result is None:
        lines.append('lost writes: not verified')
    else:
        lines.append('verified %d users against the %s schema' % (result['checked'], result['schema']))
        lines.append('lost writes: %d' % result['lost_writes'])
        for item in result['lost'][:10]:
            lines.append('  lost: user %s %s (%s shape): expected %s, found %s'
                         % (item['id'], item['kind'], item['schema'], json.dumps(item['expected']), json.dumps(item['actual'])))
    return lines


def write_report(report, path):
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        json.dump(report, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_report(path):
    with open(path, 'r', encoding='utf-8') as handle:
        report = json.load(handle)
    return report


def db_connect(args):
    import pymysql  # pylint: disable=import-outside-toplevel
    password = args.db_password
    if args.db_password_file:
        with open(args.db_password_file, 'r', encoding='utf-8') as handle:
            password = handle.read().strip()
    params = {'user': args.db_user, 'password': password or '', 'database': args.db_name, 'autocommit': True,
              'charset': 'utf8mb4', 'connect_timeout': 10}
    if args.db_socket:
        params['unix_socket'] = args.db_socket
    else:
        params.update(host=args.db_host, port=args.db_port)
    if args.db_socket or args.db_host in ('127.0.0.1', 'localhost', '::1'):
        params['ssl_disabled'] = True
    return pymysql.connect(**params)


def parse_mix(text):
    mix = {}
    for item in text.split(','):
        name, _sep, weight = item.partition('=')
        if name not in DEFAULT_MIX:
            raise argparse.ArgumentTypeError('unknown operation %r (known: %s)' % (name, ', '.join(DEFAULT_MIX)))
        mix[name] = float(weight)
    return mix


def build_parser():
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    sub = parser.add_subparsers(dest='command', required=True)

    def add_db(p):
        p.add_argument('--db-host', default=env.get('DB_HOST', '127.0.0.1'))
        p.add_argument('--db-port', type=int, default=int(env.get('DB_PORT', '3306')))
        p.add_argument('--db-socket', default=env.get('DB_SOCKET'))
        p.add_argument('--db-user', default=env.get('DB_USER', 'zdt'))
        p.add_argument('--db-password', default=env.get('DB_PASSWORD'))
        p.add_argument('--db-password-file', default=env.get('DB_PASSWORD_FILE'))
        p.add_argument('--db-name', default=env.get('DB_NAME'))
        p.add_argument('--schema', choices=['auto', 'v1', 'v2', 'both'], default='auto',
                       help='final schema shape to read addresses from (auto: v1 if users has the address columns)')

    run = sub.add_parser('run', help='send load; write the report; with --verify also verify')
    run.add_argument('--url', required=True, help='http://host:port of the service (the load balancer)')
    run.add_argument('--rate', type=float, default=200.0, help='requests per second (default 200)')
    run.add_argument('--duration', type=float, default=None, help='seconds (default: until stop file/signal, max 3600)')
    run.add_argument('--max-requests', type=int, default=None, help='hard cap on requests')
    run.add_argument('--workers', type=int, default=8)
    run.add_argument('--timeout', type=float, default=10.0, help='per-request timeout (s)')
    run.add_argument('--stop-file', default=None, help='stop when this file exists')
    run.add_argument('--mix', type=parse_mix, default=None, help='e.g. list=30,health=10,get=10,create=25,update=20,delete=5')
    run.add_argument('--seed', type=int, default=None)
    run.add_argument('--existing', type=int, default=None,
                     help='users with ids below this existed before the run: also take some over and update them')
    run.add_argument('--report', default='loadgen-report.json')
    run.add_argument('--verify', action='store_true', help='verify against the database at the end (DB options)')
    add_db(run)

    ver = sub.add_parser('verify', help='verify a report against the final database; exit 1 on failures or lost writes')
    ver.add_argument('--report', required=True)
    add_db(ver)

    summ = sub.add_parser('summary', help='print the summary of a report')
    summ.add_argument('--report', required=True)
    return parser


def _verify_into(report, args):
    conn = db_connect(args)
    try:
        report['verify'] = verify(conn, report['users'], None if args.schema == 'auto' else args.schema)
    finally:
        conn.close()


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == 'summary':
        report = read_report(args.report)
        print('\n'.join(summary_lines(report)))
        return 0
    if args.command == 'verify':
        report = read_report(args.report)
        _verify_into(report, args)
        write_report(report, args.report)
        print('\n'.join(summary_lines(report)))
        return 1 if report['failed'] or report['verify']['lost_writes'] else 0
    duration = args.duration if args.duration is not None else (None if args.max_requests else 3600.0)
    gen = LoadGenerator(args.url, rate=args.rate, duration=duration, max_requests=args.max_requests, workers=args.workers,
                        stop_file=args.stop_file, mix=args.mix, seed=args.seed, timeout=args.timeout, existing=args.existing)

    def on_signal(signum, frame):  # pylint: disable=unused-argument
        gen.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gen.start()
    while any(t.is_alive() for t in gen._threads):  # pylint: disable=protected-access
        time.sleep(0.1)
    gen.join()
    report = gen.report()
    if args.verify:
        _verify_into(report, args)
    write_report(report, args.report)
    print('\n'.join(summary_lines(report)))
    if args.verify:
        return 1 if report['failed'] or report['verify']['lost_writes'] else 0
    return 1 if report['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())
