"""The sample service (both releases) and the load generator against the sandbox MariaDB."""
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from zdt_lab import loadgen
from zdt_lab.sandbox import free_port, port_accepts

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASES = os.path.join(REPO, 'sample', 'service', 'releases')

SCHEMA_001 = ('CREATE TABLE users (id INT NOT NULL AUTO_INCREMENT, name VARCHAR(100), email VARCHAR(255), '
              'address_line_1 VARCHAR(100), address_line_2 VARCHAR(100), PRIMARY KEY (id)) ENGINE=InnoDB')
EXPAND_002 = ('CREATE TABLE addresses (id INT NOT NULL AUTO_INCREMENT, user_id INT NOT NULL, address_line_1 VARCHAR(100), '
              'address_line_2 VARCHAR(100), PRIMARY KEY (id), UNIQUE KEY addresses_user_id (user_id), '
              'CONSTRAINT addresses_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE) ENGINE=InnoDB')
CONTRACT_002 = ['ALTER TABLE users DROP COLUMN address_line_1, DROP COLUMN address_line_2',
                'CREATE INDEX addresses_user ON addresses (user_id)',
                'DROP INDEX addresses_user_id ON addresses']


class App:
    """One sample service process started by the test (stopped by its pid)."""

    def __init__(self, db, version, log_dir, **env):
        self.port = free_port()
        params = db.params
        self.env = dict(os.environ, APP_PORT=str(self.port), APP_COLOR='blue', DB_HOST=params['login_host'],
                        DB_PORT=str(params['login_port']), DB_USER=params['login_user'],
                        DB_PASSWORD=params['login_password'], DB_NAME=db.name, APP_THREADS='8')
        self.env.update({k: str(v) for k, v in env.items()})
        self.log_path = os.path.join(str(log_dir), 'app-v%d-%d.log' % (version, self.port))
        with open(self.log_path, 'wb') as log:
            self.proc = subprocess.Popen([sys.executable, os.path.join(RELEASES, 'v%d' % version, 'app.py')],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not port_accepts(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError('app did not start:\n' + self.log())
            time.sleep(0.05)

    def log(self):
        with open(self.log_path, 'r', encoding='utf-8', errors='replace') as handle:
            return handle.read()

    def request(self, method, path, body=None, conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection('127.0.0.1', self.port, timeout=30)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers={'Content-Type': 'application/json'} if body is not None else {})
            response = conn.getresponse()
            raw = response.read()
            data = json.loads(raw) if response.getheader('Content-Type', '').startswith('application/json') else raw.decode()
            return response.status, response.getheader('X-App-Version'), data
        finally:
            if own:
                conn.close()

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def apps(tmp_path):
    started = []

    def start(db, version, **env):
        app = App(db, version, tmp_path, **env)
        started.append(app)
        return app
    yield start
    for app in started:
        app.stop()


def schema(db, *statements):
    with db.root_connect() as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


def user_body(name, line1=None, line2=None):
    return {'name': name, 'email': name.lower() + '@example.test', 'address_line_1': line1, 'address_line_2': line2}


def test_v1_crud(db, apps):
    schema(db, SCHEMA_001)
    app = apps(db, 1)
    status, version, created = app.request('POST', '/api/users', user_body('Ada', '1 Main', 'Apt 2'))
    assert (status, version) == (201, '1')
    uid = created['id']
    assert created['address_line_1'] == '1 Main' and created['addresses'] == [
        {'id': None, 'address_line_1': '1 Main', 'address_line_2': 'Apt 2'}]
    status, _version, bare = app.request('POST', '/api/users', user_body('Bob'))
    assert status == 201 and bare['addresses'] == [] and bare['address_line_1'] is None
    status, _version, listing = app.request('GET', '/api/users?limit=1')
    assert status == 200 and [u['id'] for u in listing['users']] == [uid] and listing['next_after'] == uid
    status, _version, updated = app.request('PUT', '/api/users/%d' % uid, user_body('Ada L', '9 Oak'))
    assert status == 200 and updated['name'] == 'Ada L' and updated['address_line_2'] is None
    status, _version, patched = app.request('PATCH', '/api/users/%d' % uid, {'address_line_2': 'Floor 3'})
    assert status == 200 and (patched['address_line_1'], patched['address_line_2']) == ('9 Oak', 'Floor 3')
    assert db.query('SELECT name, address_line_1, address_line_2 FROM users WHERE id = %s', (uid,)) == (
        ('Ada L', '9 Oak', 'Floor 3'),)
    status, version, page = app.request('GET', '/')
    assert status == 200 and version == '1' and 'Ada L' in page and '9 Oak' in page
    assert app.request('DELETE', '/api/users/%d' % uid)[0] == 200
    status, version, error = app.request('GET', '/api/users/%d' % uid)
    assert (status, version) == (404, '1') and 'no such user' in error['error']
    assert app.request('DELETE', '/api/users/%d' % uid)[0] == 404
    assert app.request('POST', '/api/users', {'name': 'no email'})[0] == 400
    assert app.request('POST', '/api/users', user_body('x' * 101))[0] == 400
    assert app.request('POST', '/api/users/%d/addresses' % bare['id'], {'address_line_1': 'x'})[0] == 404   # v1 has no addresses API


def test_v2_crud_on_expanded_schema_never_writes_old_columns(db, apps):
    schema(db, SCHEMA_001, EXPAND_002)
    app = apps(db, 2)
    status, version, created = app.request('POST', '/api/users', user_body('Ada', '1 Main', 'Apt 2'))
    assert (status, version) == (201, '2')
    uid = created['id']
    assert created['address_line_1'] == '1 Main' and len(created['addresses']) == 1
    # one transaction wrote users + addresses; the old columns are left to the triggers
    assert db.query('SELECT address_line_1, address_line_2 FROM users WHERE id = %s', (uid,)) == ((None, None),)
    assert db.query('SELECT address_line_1, address_line_2 FROM addresses WHERE user_id = %s', (uid,)) == (
        ('1 Main', 'Apt 2'),)
    status, _version, updated = app.request('PUT', '/api/users/%d' % uid, user_body('Ada L', '9 Oak'))
    assert status == 200 and (updated['name'], updated['address_line_1'], updated['address_line_2']) == ('Ada L', '9 Oak', None)
    assert db.query('SELECT COUNT(*) FROM addresses WHERE user_id = %s', (uid,)) == ((1,),)
    # both flat address fields null = no address (the old shape's all-NULL columns)
    status, _version, cleared = app.request('PATCH', '/api/users/%d' % uid, {'address_line_1': None, 'address_line_2': None})
    assert status == 200 and cleared['addresses'] == []
    assert db.query('SELECT COUNT(*) FROM addresses WHERE user_id = %s', (uid,)) == ((0,),)
    status, _version, address = app.request('POST', '/api/users/%d/addresses' % uid, {'address_line_1': '5 Elm'})
    assert status == 201 and address['user_id'] == uid
    status, _version, changed = app.request('PUT', '/api/addresses/%d' % address['id'], {'address_line_1': '6 Elm'})
    assert status == 200 and changed['address_line_1'] == '6 Elm'
    status, _version, page = app.request('GET', '/')
    assert status == 200 and '6 Elm' in page
    assert app.request('DELETE', '/api/addresses/%d' % address['id'])[0] == 200
    assert app.request('GET', '/api/addresses/%d' % address['id'])[0] == 404
    # a user delete cascades to the addresses
    app.request('PUT', '/api/users/%d' % uid, user_body('Ada L', '7 Elm'))
    assert app.request('DELETE', '/api/users/%d' % uid)[0] == 200
    assert db.query('SELECT COUNT(*) FROM addresses') == ((0,),)


def test_v2_refuses_a_second_address_during_the_window_and_allows_it_after_contract(db, apps):
    schema(db, SCHEMA_001, EXPAND_002)
    app = apps(db, 2, ZDT_SCHEMA_POLL='0')
    uid = app.request('POST', '/api/users', user_body('Ada', '1 Main'))[2]['id']
    status, version, error = app.request('POST', '/api/users/%d/addresses' % uid, {'address_line_1': '2 Main'})
    assert (status, version) == (409, '2') and 'contracted' in error['error']
    assert db.query('SELECT COUNT(*) FROM addresses WHERE user_id = %s', (uid,)) == ((1,),)
    schema(db, *CONTRACT_002)
    status, _version, second = app.request('POST', '/api/users/%d/addresses' % uid, {'address_line_1': '2 Main'})
    assert status == 201
    status, _version, user = app.request('GET', '/api/users/%d' % uid)
    assert [a['address_line_1'] for a in user['addresses']] == ['1 Main', '2 Main']
    assert user['address_line_1'] == '1 Main'           # the flat fields are the first address
    assert second['id'] == user['addresses'][1]['id']
    # v2 works on the contracted schema: create/update/delete users with the same JSON as v1
    status, _version, created = app.request('POST', '/api/users', user_body('Bob', '3 Oak'))
    assert status == 201 and created['address_line_1'] == '3 Oak'


def test_v2_forced_single_address_flag(db, apps):
    schema(db, SCHEMA_001, EXPAND_002, *CONTRACT_002)
    app = apps(db, 2, ZDT_SINGLE_ADDRESS='1')
    uid = app.request('POST', '/api/users', user_body('Ada', '1 Main'))[2]['id']
    assert app.request('POST', '/api/users/%d/addresses' % uid, {'address_line_1': '2 Main'})[0] == 409


def test_health_names_version_and_color_and_fails_without_database(db, apps):
    schema(db, SCHEMA_001)
    app = apps(db, 1, APP_COLOR='green')
    assert app.request('GET', '/health')[:3] == (200, '1', {'status': 'ok', 'version': 1, 'color': 'green'})
    # v2 is not healthy before the schema is expanded
    v2 = apps(db, 2)
    status, version, body = v2.request('GET', '/health')
    assert (status, version, body['status']) == (503, '2', 'unavailable')
    schema(db, EXPAND_002)
    assert v2.request('GET', '/health')[:2] == (200, '2')
    down = apps(db, 1, DB_PORT=free_port(), DB_POOL_WARM=0)
    status, version, body = down.request('GET', '/health')
    assert (status, version, body['version']) == (503, '1', 1)


def test_keepalive_and_version_header_on_every_response(db, apps):
    schema(db, SCHEMA_001)
    app = apps(db, 1)
    conn = http.client.HTTPConnection('127.0.0.1', app.port, timeout=10)
    try:
        for path in ('/health', '/api/users', '/nope', '/api/users/abc'):
            conn.request('GET', path)
            response = conn.getresponse()
            response.read()
            assert response.getheader('X-App-Version') == '1'
            assert not response.will_close
        first_sock = conn.sock
        conn.request('GET', '/health')
        conn.getresponse().read()
        assert conn.sock is first_sock          # still the same TCP connection
    finally:
        conn.close()


def test_sigterm_finishes_in_flight_requests_then_exits_0(db, apps):
    schema(db, SCHEMA_001)
    app = apps(db, 1, APP_TEST_HOOKS=1)
    idle = http.client.HTTPConnection('127.0.0.1', app.port, timeout=10)
    idle.request('GET', '/health')
    idle.getresponse().read()                    # an idle keep-alive connection must not hold the stop up
    results = []

    def slow():
        started = time.monotonic()
        results.append(app.request('POST', '/api/users?sleep=2', user_body('Slow', '1 Main')) + (time.monotonic() - started,))
    worker = threading.Thread(target=slow)
    worker.start()
    time.sleep(0.5)
    stop_started = time.monotonic()
    app.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert not port_accepts(app.port)             # no longer accepting
    assert app.proc.wait(10) == 0
    stopped_after = time.monotonic() - stop_started
    worker.join(5)
    idle.close()
    status, version, body, seconds = results[0]
    assert (status, version) == (201, '1') and seconds >= 2
    assert 1.0 <= stopped_after < 4.0, stopped_after
    assert db.query('SELECT COUNT(*) FROM users WHERE name = %s', ('Slow',)) == ((1,),)
    assert 'all requests finished' in app.log()
    assert body['name'] == 'Slow'


def test_lock_wait_timeout_is_retried_until_the_lock_is_released(db, apps):
    schema(db, SCHEMA_001)
    app = apps(db, 1, DB_LOCK_WAIT_TIMEOUT=1, DB_RETRIES=5)
    uid = app.request('POST', '/api/users', user_body('Ada'))[2]['id']
    blocker = db.connect()
    try:
        with blocker.cursor() as cur:
            cur.execute('BEGIN')
            cur.execute('SELECT id FROM users WHERE id = %s FOR UPDATE', (uid,))
            timer = threading.Timer(1.6, blocker.rollback)   # hold the row lock for > 1 lock wait timeout
            timer.start()
            status, _version, body = app.request('PATCH', '/api/users/%d' % uid, {'name': 'Ada L'})
            timer.join()
    finally:
        blocker.close()
    assert status == 200 and body['name'] == 'Ada L'
    assert 'transient error 1205' in app.log()
    # a lock held longer than every retry: 503, nothing written
    blocker = db.connect()
    try:
        with blocker.cursor() as cur:
            cur.execute('BEGIN')
            cur.execute('SELECT id FROM users WHERE id = %s FOR UPDATE', (uid,))
            fast = apps(db, 1, DB_LOCK_WAIT_TIMEOUT=1, DB_RETRIES=1)
            status, _version, body = fast.request('PATCH', '/api/users/%d' % uid, {'name': 'never'})
            blocker.rollback()
    finally:
        blocker.close()
    assert status == 503 and '1205' in body['error']
    assert db.query('SELECT name FROM users WHERE id = %s', (uid,)) == (('Ada L',),)


def test_deadlock_is_retried(db, apps):
    """A real 1213 with the app's transaction as the victim: it is rolled back and run again, the client sees 200.

    v2's user update locks the users row, then the user's addresses row.  A heavier blocker session
    (it modified 200 rows, so InnoDB picks the app as the victim) holds the addresses row, lets the
    app lock the users row, then asks for the users row itself: a cycle.
    """
    schema(db, SCHEMA_001, EXPAND_002)
    app = apps(db, 2)
    uid = app.request('POST', '/api/users', user_body('A', '1 Main'))[2]['id']
    blocker = db.connect()
    result = {}
    try:
        with blocker.cursor() as cur:
            cur.execute('BEGIN')
            cur.executemany('INSERT INTO users (name) VALUES (%s)', [('ballast %d' % i,) for i in range(200)])
            cur.execute('SELECT id FROM addresses WHERE user_id = %s FOR UPDATE', (uid,))

            def put():
                result['app'] = app.request('PUT', '/api/users/%d' % uid, user_body('A2', '2 Main'))
            worker = threading.Thread(target=put)
            worker.start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:      # wait until the app holds users(uid) and waits for the address
                waiting = db.query("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'")
                if waiting[0][0]:
                    break
                time.sleep(0.02)
            cur.execute('SELECT id FROM users WHERE id = %s FOR UPDATE', (uid,))   # closes the cycle
            blocker.rollback()
            worker.join(20)
    finally:
        blocker.close()
    status, version, body = result['app']
    assert (status, version) == (200, '2') and body['name'] == 'A2' and body['address_line_1'] == '2 Main'
    assert 'transient error 1213' in app.log()
    assert db.query('SELECT address_line_1 FROM addresses WHERE user_id = %s', (uid,)) == (('2 Main',),)
    assert db.query('SELECT COUNT(*) FROM users') == ((1,),)


def test_loadgen_against_v1_then_v2_and_verify(db, apps):
    """The load generator's writes verify on both shapes, and a tampered row is reported as a lost write."""
    schema(db, SCHEMA_001)
    v1 = apps(db, 1)
    gen = loadgen.LoadGenerator('http://127.0.0.1:%d' % v1.port, rate=150, duration=2.0, workers=4, seed=7)
    report = gen.run()
    assert report['failed'] == 0, report['failure_samples']
    assert report['writes']['acknowledged'] > 50 and report['versions'] == {'1': report['requests']}
    with db.connect() as conn:
        result = loadgen.verify(conn, report['users'], None)
    assert result == {'schema': 'v1', 'checked': report['writes']['create'], 'lost_writes': 0, 'lost_by_kind': {},
                      'lost': []}
    # move to the v2 shape by hand (what expand + backfill + contract do) and write through v2
    schema(db, EXPAND_002,
           'INSERT INTO addresses (user_id, address_line_1, address_line_2) SELECT id, address_line_1, address_line_2 '
           'FROM users WHERE address_line_1 IS NOT NULL OR address_line_2 IS NOT NULL', *CONTRACT_002)
    v2 = apps(db, 2)
    gen2 = loadgen.LoadGenerator('http://127.0.0.1:%d' % v2.port, rate=150, duration=2.0, workers=4, seed=8)
    report2 = gen2.run()
    assert report2['failed'] == 0 and report2['versions'] == {'2': report2['requests']}
    users = dict(report['users'], **report2['users'])
    with db.connect() as conn:
        assert loadgen.verify(conn, users, None)['lost_writes'] == 0
        live = [int(k) for k, rec in users.items() if rec['expected'] == [rec['expected'][0]] and rec['expected'][0]]
        with conn.cursor() as cur:
            cur.execute('UPDATE users SET name = %s WHERE id = %s', ('tampered', live[0]))
        result = loadgen.verify(conn, users, 'v2')
    assert result['lost_writes'] == 1 and result['lost'][0]['id'] == live[0] and result['lost'][0]['kind'] == 'different'


def test_loadgen_takes_over_pre_existing_users_and_verifies_them(db, apps):
    """With --existing, users the generator did not create are read, updated and verified like its own."""
    schema(db, SCHEMA_001)
    db.query("INSERT INTO users (id, name, email, address_line_1) SELECT seq, CONCAT('seed', seq), CONCAT('s', seq, '@x.test'), "
             "'old street' FROM seq_1_to_300")
    v1 = apps(db, 1)
    gen = loadgen.LoadGenerator('http://127.0.0.1:%d' % v1.port, rate=150, duration=2.0, workers=4, seed=9, existing=301)
    report = gen.run()
    assert report['failed'] == 0, report['failure_samples']
    adopted = [int(k) for k, rec in report['users'].items() if int(k) <= 300 and rec['expected'] == [rec['expected'][0]] and rec['expected'][0]]
    assert report['writes']['adopt'] >= 5 and len(adopted) >= 5
    with db.connect() as conn:
        assert loadgen.verify(conn, report['users'], None)['lost_writes'] == 0
        with conn.cursor() as cur:
            cur.execute("UPDATE users SET address_line_1 = 'lost' WHERE id = %s", (adopted[0],))
        result = loadgen.verify(conn, report['users'], None)
    assert result['lost_writes'] >= 1 and adopted[0] in [lost['id'] for lost in result['lost']]


def test_seed_both_shapes_and_rerun_changes_nothing(db):
    seed_py = os.path.join(REPO, 'sample', 'seed.py')
    params = db.params
    args = [sys.executable, seed_py, '--quiet', '--batch', '700', '--db-host', params['login_host'],
            '--db-port', str(params['login_port']), '--db-user', params['login_user'], '--db-name', db.name]
    env = dict(os.environ, DB_PASSWORD=params['login_password'])
    schema(db, SCHEMA_001)
    out = subprocess.run(args + ['--count', '2000'], env=env, check=True, stdout=subprocess.PIPE).stdout.decode()
    assert 'seeded 2000 users' in out
    (total, with_address), = db.query('SELECT COUNT(*), COUNT(address_line_1) FROM users')
    assert total == 2000 and 1800 < with_address < 2000
    out = subprocess.run(args + ['--count', '2000'], env=env, check=True, stdout=subprocess.PIPE).stdout.decode()
    assert 'nothing seeded' in out and db.query('SELECT COUNT(*) FROM users') == ((2000,),)
    # contracted v2 shape: users + addresses rows, each address on the right user
    schema(db, 'DELETE FROM users', EXPAND_002, *CONTRACT_002)
    subprocess.run(args + ['--count', '1500'], env=env, check=True, stdout=subprocess.PIPE)
    (users,), = db.query('SELECT COUNT(*) FROM users')
    (addresses, distinct), = db.query('SELECT COUNT(*), COUNT(DISTINCT user_id) FROM addresses')
    assert users == 1500 and addresses == distinct and 1350 < addresses < 1500
    assert db.query('SELECT COUNT(*) FROM addresses a LEFT JOIN users u ON u.id = a.user_id WHERE u.id IS NULL') == ((0,),)


def test_idle_keepalive_connections_give_their_thread_to_a_new_connection(db, apps):
    schema(db, SCHEMA_001)
    app = apps(db, 1, APP_THREADS=2, APP_KEEPALIVE_TIMEOUT=60)
    idle = []
    for _unused in range(2):
        conn = http.client.HTTPConnection('127.0.0.1', app.port, timeout=10)
        conn.request('GET', '/health')
        conn.getresponse().read()
        idle.append(conn)                 # both threads now hold an idle keep-alive connection
    started = time.monotonic()
    assert app.request('GET', '/health')[0] == 200
    assert time.monotonic() - started < 2.0
    for conn in idle:
        conn.close()
