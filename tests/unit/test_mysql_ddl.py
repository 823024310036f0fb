"""The DDL runner: short lock waits, retries with backoff, online fallback, never a copy (no server)."""
import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_ddl import run_all, run_ddl
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_errors import backoff_delay


def test_backoff_grows_and_is_capped():
    delays = [backoff_delay(a, rand=lambda: 1.0) for a in range(10)]
    assert delays[0] == pytest.approx(0.1) and delays[3] == pytest.approx(0.8) and max(delays) == 5.0
    assert backoff_delay(2, rand=lambda: 0.0) == pytest.approx(0.2)


class FakeError(Exception):
    pass


class FakeCursor(object):
    def __init__(self, conn):
        self.conn = conn
        self.rows = ()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def execute(self, sql, args=None):
        self.conn.log.append(sql if args is None else (sql, args))
        outcome = self.conn.script.pop(0) if self.conn.script and not sql.startswith(('SET ', 'SELECT')) else None
        if isinstance(outcome, Exception):
            raise outcome
        self.rows = ()

    def fetchall(self):
        return self.rows


class FakeConn(object):
    def __init__(self, script):
        self.script = list(script)
        self.log = []

    def cursor(self):
        return FakeCursor(self)


def run(conn, statement, fallback=None, **kwargs):
    return run_ddl(conn, statement, 'expand[0] add_column users.phone', fallback=fallback, tables=('users',), **kwargs)


def test_run_ddl_retries_lock_waits_then_succeeds():
    conn = FakeConn([FakeError(1205, 'Lock wait timeout exceeded'), FakeError(1205, 'Lock wait timeout exceeded'), None])
    sleeps = []
    assert run(conn, 'ALTER X', lock_wait_timeout=2, retries=5, sleep=sleeps.append) == 'ALTER X'
    assert conn.log[0] == ('SET SESSION lock_wait_timeout = %s', (2,))
    assert conn.log.count('ALTER X') == 3 and len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2


def test_run_ddl_gives_up_naming_the_op():
    conn = FakeConn([FakeError(1205, 'Lock wait timeout exceeded')] * 4)
    with pytest.raises(DatabaseError) as err:
        run(conn, 'ALTER X', lock_wait_timeout=1, retries=3, sleep=lambda s: None)
    assert 'expand[0] add_column users.phone' in str(err.value) and 'gave up after 4 attempts' in str(err.value)
    assert conn.log.count('ALTER X') == 4


def test_run_ddl_falls_back_from_instant_but_never_copies():
    conn = FakeConn([FakeError(1846, 'ALGORITHM=INSTANT is not supported'), None])
    assert run(conn, 'ALTER I', 'ALTER P', sleep=lambda s: None) == 'ALTER P'
    conn = FakeConn([FakeError(1846, 'ALGORITHM=INSTANT is not supported'), FakeError(1846, 'ALGORITHM=INPLACE is not supported. Try COPY')])
    with pytest.raises(DatabaseError) as err:
        run(conn, 'ALTER I', 'ALTER P', sleep=lambda s: None)
    assert 'cannot make this change online' in str(err.value) and 'expand[0] add_column' in str(err.value)
    assert not any('COPY' in str(x) for x in conn.log if isinstance(x, str) and x.startswith('ALTER'))


def test_run_ddl_other_errors_are_not_retried():
    conn = FakeConn([FakeError(1064, 'syntax error')])
    with pytest.raises(DatabaseError) as err:
        run(conn, 'ALTER X', sleep=lambda s: pytest.fail('must not sleep'))
    assert 'error 1064' in str(err.value)


def test_trigger_ddl_retries_then_gives_up_naming_the_statement():
    sleeps = []
    conn = FakeConn([FakeError(1205, 'Lock wait timeout exceeded'), None])
    run_all(conn, [('CREATE TRIGGER x', 'CREATE TRIGGER x', ('users',))], lock_wait_timeout=2, retries=3, sleep=sleeps.append)
    assert conn.log[0] == ('SET SESSION lock_wait_timeout = %s', (2,))
    assert conn.log.count('CREATE TRIGGER x') == 2 and len(sleeps) == 1
    conn = FakeConn([FakeError(1205, 'timeout')] * 5)
    with pytest.raises(DatabaseError) as err:
        run_all(conn, [('CREATE TRIGGER y', 'CREATE TRIGGER y', ('users',))], retries=2, sleep=lambda s: None)
    assert 'CREATE TRIGGER y: gave up after 3 attempts' in str(err.value)
