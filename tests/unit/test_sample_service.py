"""Unit tests of the sample service's pure parts: configuration, retry wrapper, pool, validation, routing."""
import json

import pymysql
import pytest

# zdt_sample: sample/service/common, on pytest's path by pytest.ini.
from zdt_sample import db as dbmod
from zdt_sample.config import Config, ConfigError
from zdt_sample.server import HTTPError, Request, Service, error_response, json_response
from zdt_sample.users import page_args, parse_id, user_json, validate_address, validate_user


# ---------------------------------------------------------------- configuration

def test_config_defaults_and_params():
    config = Config({'DB_NAME': 'app', 'DB_PASSWORD': 'pw', 'APP_PORT': '8001', 'APP_COLOR': 'green'})
    assert (config.bind, config.port, config.color, config.threads) == ('127.0.0.1', 8001, 'green', 32)
    params = config.db_params()
    assert params['host'] == '127.0.0.1' and params['port'] == 3306 and params['database'] == 'app'
    assert params['autocommit'] is False
    assert params['ssl_disabled'] is True          # loopback: no TLS context per connection
    assert config.single_address is None           # v2 detects the window from the schema


def test_config_socket_password_file_and_flags(tmp_path):
    secret = tmp_path / 'pw'
    secret.write_text('s3cret\n')
    config = Config({'DB_NAME': 'app', 'DB_SOCKET': '/run/db.sock', 'DB_PASSWORD_FILE': str(secret),
                     'ZDT_SINGLE_ADDRESS': 'no', 'DB_LOCK_WAIT_TIMEOUT': '2', 'APP_TEST_HOOKS': '1'})
    params = config.db_params()
    assert params['unix_socket'] == '/run/db.sock' and 'host' not in params
    assert params['password'] == 's3cret'
    assert params['init_command'] == 'SET SESSION innodb_lock_wait_timeout = 2'
    assert config.single_address is False and config.test_hooks is True


def test_config_remote_host_prefers_tls():
    assert 'ssl_disabled' not in Config({'DB_NAME': 'app', 'DB_HOST': 'db.example.test'}).db_params()


@pytest.mark.parametrize('env, message', [
    ({}, 'DB_NAME is required'),
    ({'DB_NAME': 'x', 'APP_PORT': 'eighty'}, 'APP_PORT must be an integer'),
    ({'DB_NAME': 'x', 'APP_THREADS': '0'}, 'APP_THREADS must be >= 1'),
    ({'DB_NAME': 'x', 'ZDT_SINGLE_ADDRESS': 'maybe'}, 'ZDT_SINGLE_ADDRESS must be a boolean'),
    ({'DB_NAME': 'x', 'DB_SSL': 'sometimes'}, 'DB_SSL must be'),
    ({'DB_NAME': 'x', 'DB_PASSWORD_FILE': '/nonexistent/pw'}, 'DB_PASSWORD_FILE'),
])
def test_config_rejects_bad_values(env, message):
    with pytest.raises(ConfigError, match=message):
        Config(env)


# ---------------------------------------------------------------- transactions

class FakeCursor:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakeConn:
    def __init__(self, number, commit_error=None):
        self.number = number
        self.commits = 0
        self.rollbacks = 0
        self.closed = False
        self.commit_error = commit_error

    def cursor(self):
        return FakeCursor()

    def commit(self):
        if self.commit_error:
            raise self.commit_error
        self.commits += 1

    def rollback(self):
        self.rollbacks += 1

    def close(self):
        self.closed = True


class FakeFactory:
    def __init__(self, commit_error=None):
        self.made = []
        self.commit_error = commit_error

    def __call__(self):
        conn = FakeConn(len(self.made), self.commit_error)
        self.made.append(conn)
        return conn


def failing_work(errors, result='done'):
    """work(cursor) that raises the given errors one per call, then returns result."""
    calls = []

    def work(cur):
        calls.append(cur)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result
    return work, calls


def test_deadlock_and_lock_wait_are_retried_as_whole_transactions():
    factory = FakeFactory()
    pool = dbmod.Pool(factory, 4)
    sleeps = []
    errors = [pymysql.err.OperationalError(1213, 'Deadlock found'), pymysql.err.OperationalError(1205, 'Lock wait timeout')]
    work, calls = failing_work(errors)
    assert dbmod.run_transaction(pool, work, retries=5, sleep=sleeps.append) == 'done'
    assert len(calls) == 3
    assert sleeps == [0.02, 0.04]
    # each failed attempt rolled back and its connection was discarded, the last one committed
    assert [c.rollbacks for c in factory.made] == [1, 1, 0]
    assert [c.closed for c in factory.made] == [True, True, False]
    assert factory.made[-1].commits == 1


def test_retries_are_bounded():
    pool = dbmod.Pool(FakeFactory(), 2)
    work, calls = failing_work([pymysql.err.OperationalError(1213, 'Deadlock found')] * 10)
    with pytest.raises(dbmod.TransactionFailed) as info:
        dbmod.run_transaction(pool, work, retries=3, sleep=lambda s: None)
    assert info.value.code == 1213 and info.value.attempts == 4
    assert len(calls) == 4
    assert pool.stats['open'] == 0      # every broken connection was given back and closed


def test_lost_connection_is_retried_once_then_reported():
    factory = FakeFactory()
    pool = dbmod.Pool(factory, 2)
    lost = pymysql.err.OperationalError(2013, 'Lost connection to server during query')
    work, calls = failing_work([lost])
    assert dbmod.run_transaction(pool, work, sleep=lambda s: None) == 'done'
    assert len(calls) == 2 and factory.made[0].closed
    work, calls = failing_work([lost, pymysql.err.OperationalError(2006, 'MySQL server has gone away')])
    with pytest.raises(dbmod.DatabaseUnavailable):
        dbmod.run_transaction(pool, work, sleep=lambda s: None)
    assert len(calls) == 2


def test_lost_connection_during_commit_is_not_repeated():
    pool = dbmod.Pool(FakeFactory(commit_error=pymysql.err.OperationalError(2013, 'Lost connection')), 2)
    work, calls = failing_work([])
    with pytest.raises(dbmod.DatabaseUnavailable, match='COMMIT'):
        dbmod.run_transaction(pool, work)
    assert len(calls) == 1


def test_other_errors_propagate_without_retry_and_app_aborts_keep_the_connection():
    factory = FakeFactory()
    pool = dbmod.Pool(factory, 2)
    work, calls = failing_work([pymysql.err.IntegrityError(1062, 'Duplicate entry')])
    with pytest.raises(pymysql.err.IntegrityError):
        dbmod.run_transaction(pool, work)
    assert len(calls) == 1 and factory.made[0].closed
    work, calls = failing_work([HTTPError(404, 'no such user')])
    with pytest.raises(HTTPError):
        dbmod.run_transaction(pool, work)
    assert factory.made[1].rollbacks == 1 and not factory.made[1].closed
    assert pool.stats == {'open': 1, 'idle': 1, 'size': 2}


def test_pool_is_bounded_and_reuses_connections():
    factory = FakeFactory()
    pool = dbmod.Pool(factory, 2)
    first, second = pool.acquire(), pool.acquire()
    with pytest.raises(dbmod.DatabaseUnavailable, match='no database connection free'):
        pool.acquire(timeout=0.05)
    pool.release(first)
    assert pool.acquire() is first
    pool.release(first)
    pool.release(second)
    assert pool.warm(5) == 2 and len(factory.made) == 2
    pool.close()
    assert first.closed and second.closed


def test_pool_reports_unreachable_database():
    def refuse():
        raise pymysql.err.OperationalError(2003, "Can't connect to MySQL server")
    pool = dbmod.Pool(refuse, 2)
    with pytest.raises(dbmod.DatabaseUnavailable, match='cannot connect'):
        pool.acquire()
    assert pool.stats['open'] == 0


# ---------------------------------------------------------------- validation and JSON

def test_validate_user_full_and_partial():
    expected = {'name': 'A', 'email': 'a@x', 'address_line_1': None, 'address_line_2': None}
    assert validate_user({'name': 'A', 'email': 'a@x'}) == expected
    assert validate_user({'address_line_2': None}, partial=True) == {'address_line_2': None}
    for body, partial, message in [({'email': 'a@x'}, False, 'name is required'),
                                   ({'name': 'A', 'email': 'a@x', 'shoe': 1}, False, 'unknown field'),
                                   ({'name': 'x' * 101, 'email': 'a@x'}, False, 'longer than 100'),
                                   ({'name': 'A', 'email': 7}, False, 'must be a string'),
                                   ({'name': ' ', 'email': 'e'}, False, 'must not be empty'),
                                   ({}, True, 'nothing to update'),
                                   ({'name': None}, True, 'name is required')]:
        with pytest.raises(HTTPError, match=message) as info:
            validate_user(body, partial=partial)
        assert info.value.status == 400


def test_validate_address_and_ids_and_paging():
    assert validate_address({'address_line_1': 'x'}) == {'address_line_1': 'x', 'address_line_2': None}
    with pytest.raises(HTTPError):
        validate_address({}, partial=True)
    assert parse_id('12') == 12
    with pytest.raises(HTTPError) as info:
        parse_id('abc')
    assert info.value.status == 400
    with pytest.raises(HTTPError) as info:
        parse_id('0')
    assert info.value.status == 404
    assert page_args({}) == (20, 0)
    assert page_args({'limit': '5', 'after': '-3'}) == (5, 0)
    with pytest.raises(HTTPError):
        page_args({'limit': '100000'})


def test_user_json_is_the_same_shape_for_both_versions():
    v1 = user_json(1, 'A', 'a@x', [(None, 'l1', None)])
    v2 = user_json(1, 'A', 'a@x', [(9, 'l1', None), (12, 'other', 'x')])
    assert set(v1) == set(v2) == {'id', 'name', 'email', 'address_line_1', 'address_line_2', 'addresses'}
    assert (v1['address_line_1'], v2['address_line_1'], v2['addresses'][1]['id']) == ('l1', 'l1', 12)
    none = user_json(2, 'B', 'b@x', [])
    assert none['address_line_1'] is None and none['address_line_2'] is None and none['addresses'] == []


# ---------------------------------------------------------------- routing and errors

class EchoService(Service):
    version = 7

    def routes(self):
        return [('GET', r'/things/(?P<thing>\d+)', lambda request, thing: json_response(200, {'thing': int(thing)}))]


def test_dispatch_routes_404_and_405():
    service = EchoService(Config({'DB_NAME': 'x'}), pool=None)
    response = service.dispatch(Request('GET', '/things/5', {}, {}, b''))
    assert json.loads(response.body) == {'thing': 5}
    with pytest.raises(HTTPError) as info:
        service.dispatch(Request('GET', '/nothing', {}, {}, b''))
    assert info.value.status == 404
    with pytest.raises(HTTPError) as info:
        service.dispatch(Request('DELETE', '/things/5', {}, {}, b''))
    assert info.value.status == 405 and info.value.extra['allow'] == 'GET'


def test_request_json_errors():
    with pytest.raises(HTTPError, match='required'):
        Request('POST', '/', {}, {}, b'').json()
    with pytest.raises(HTTPError, match='not valid JSON'):
        Request('POST', '/', {}, {}, b'{nope').json()
    with pytest.raises(HTTPError, match='JSON object'):
        Request('POST', '/', {}, {}, b'[1]').json()


@pytest.mark.parametrize('exc, status', [
    (HTTPError(409, 'second address'), 409),
    (dbmod.TransactionFailed(1213, 'Deadlock', 6), 503),
    (dbmod.DatabaseUnavailable('down'), 503),
    (pymysql.err.IntegrityError(1062, "Duplicate entry '1' for key 'addresses_user_id'"), 409),
    (pymysql.err.IntegrityError(1452, 'Cannot add or update a child row'), 409),
    (pymysql.err.DataError(1406, 'Data too long'), 400),
    (pymysql.err.ProgrammingError(1146, "Table 'x.addresses' doesn't exist"), 500),
    (ValueError('bug'), 500),
])
def test_error_mapping(exc, status):
    response = error_response(exc)
    assert response.status == status
    assert 'error' in json.loads(response.body)
