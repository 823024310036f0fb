"""mysql_trigger_sync with a real MariaDB replica (GTID replication over loopback): lag throttling from the heartbeat,
an unreachable replica, the server checks made before any change, and verify_replicas.

One sandbox of its own for the module: a primary with binary logging (ROW) and one replica. The primary sets
log_bin_trust_function_creators=1, so the application account may create triggers under binary logging (the test of
that check turns it off for a moment).
"""
import os
import signal
import time

import pytest

from zdt_lab.modules import module_result, start_module
from zdt_lab.replica_lag import same_data
from zdt_lab.sync_races import SEED, create_users, cross_differences, cross_race, execute, expected_addresses, snapshot_cross
from zdt_lab.waiting import wait_for

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_replicas import replicas_from_params
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_runner import sync_present


@pytest.fixture(scope='module')
def stack(sandbox_factory):
    yield from sandbox_factory('zdt-it-rep-', replica=True, options={'log-bin-trust-function-creators': 1})


@pytest.fixture
def rdb(stack, database_factory):
    """A fresh database on the primary; it replicates to the replica."""
    yield from database_factory(stack.mariadb)


def replica_args(stack, **extra):
    return dict(dict(replicas=[{'login_port': stack.replica.port}]), **extra)


def checkpoint(db):
    """(rows_done, paused, pause_reason, state) of the seed migration's checkpoint, None before it exists."""
    if not db.query("SHOW TABLES LIKE 'zdt_sync_progress'"):
        return None
    rows = db.query('SELECT rows_done, paused, pause_reason, state FROM zdt_sync_progress WHERE migration_id = 2')
    return rows[0] if rows else None


def zdt_objects(db):
    """Our triggers and tables in the database, and the rows of the new table: what a refused run must not have changed."""
    triggers = db.query('SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s', (db.name,))[0][0]
    tables = db.query("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME LIKE 'zdt%%'", (db.name,))[0][0]
    return triggers, tables, db.query('SELECT COUNT(*) FROM addresses')[0][0]


def replica_heartbeat(stack, db):
    """The backfill's heartbeat as the replica shows it (None before it has the checkpoint)."""
    with stack.replica.root_connect(db.name) as conn:
        try:
            rows = execute(conn, 'SELECT heartbeat FROM zdt_sync_progress WHERE migration_id = 2')
        except Exception:  # pylint: disable=broad-except  # the table is not there yet
            return None
    return rows[0][0] if rows else None


def same_data_on_the_replica(stack, db):
    """Once the replica has everything the primary logged: the same checksum for every table."""
    return same_data(stack.mariadb, stack.replica, db.name)[0]


def finish(proc, path, timeout=120):
    return module_result('mysql_trigger_sync', proc, path, timeout)


# ------------------------------------------------------------------------------------------ lag throttling

def test_copy_waits_while_the_replica_sql_thread_is_stopped_then_finishes(stack, rdb, run_module):
    conn = rdb.connect()
    create_users(conn, 200000)
    args = dict(rdb.params, migration=SEED, chunk_time=0.1, **replica_args(stack, max_replica_lag=0.5))
    proc, path = start_module('mysql_trigger_sync', args)
    stopped = False
    try:
        wait_for(lambda: (checkpoint(rdb) or (0,))[0] >= 10000, 60)
        stack.replica.stop_sql_thread()
        stopped = time.time()
        paused = wait_for(lambda: checkpoint(rdb)[1] and checkpoint(rdb), 10)
        took = time.time() - stopped
        assert took < 0.5 + 0.1 + 1.0, took    # the limit, one chunk, and this machine's slack
        assert paused[0] < 200000 and paused[3] == 'running'
        info = run_module('mysql_sync_info', dict(rdb.params, migration=SEED))['sync'][0]['backfill']
        assert info['paused'] is True and info['state'] == 'running'
        assert info['pause_reason'].startswith('replica 127.0.0.1:%d lags ' % stack.replica.port), info
        assert info['pause_reason'].endswith('more than max_replica_lag=0.5')
        # the copy does not advance while the replica lags
        while time.time() - stopped < 3.0:
            assert checkpoint(rdb)[0] == paused[0]
            time.sleep(0.1)
    finally:
        if stopped:
            stack.replica.start_sql_thread()
    res = finish(proc, path)
    assert not res.get('failed'), res
    assert res['backfill']['rows_total'] == 200000 and res['verify']['mismatches'] == 0
    assert res['backfill']['throttled_seconds'] >= 2.0
    assert res['backfill']['max_replica_lag_seen'] > 0.5
    assert checkpoint(rdb)[1:] == (0, None, 'done')
    assert same_data_on_the_replica(stack, rdb)


# ------------------------------------------------------------------------------------------ an unreachable replica

@pytest.mark.parametrize('how', ['stopped', 'frozen'])
def test_unreachable_replica_pauses_the_copy_for_replica_timeout_then_fails_and_a_rerun_resumes(stack, rdb, run_module, how):
    """The replica lags (its SQL thread stopped: the copy pauses), then becomes unreachable. stopped: the server is shut
    down (connections refused); frozen: SIGSTOP (connections and reads hang, bounded by the replica connection's
    timeouts). The copy stays paused for replica_timeout, then the task fails; a rerun resumes from the checkpoint."""
    conn = rdb.connect()
    create_users(conn, 200000)
    args = dict(rdb.params, migration=SEED, chunk_time=0.05, **replica_args(stack, max_replica_lag=0.2, replica_timeout=2))
    proc, path = start_module('mysql_trigger_sync', args)
    pid = None
    try:
        wait_for(lambda: (checkpoint(rdb) or (0,))[0] >= 2000, 60)
        wait_for(lambda: replica_heartbeat(stack, rdb), 10)
        stack.replica.stop_sql_thread()
        wait_for(lambda: checkpoint(rdb)[1], 10)
        if how == 'stopped':
            stack.replica.stop()
        else:
            pid = stack.replica.pid
            os.kill(pid, signal.SIGSTOP)
        lost = time.time()
        reason = wait_for(lambda: 'unreachable' in (checkpoint(rdb)[2] or '') and checkpoint(rdb)[2], 10)
        res = finish(proc, path)
        failed_after = time.time() - lost
    finally:
        if pid:
            os.kill(pid, signal.SIGCONT)
        stack.replica.start()
        stack.replica.start_sql_thread()
    assert reason.startswith('replica 127.0.0.1:%d is unreachable' % stack.replica.port), reason
    assert res.get('failed'), res
    assert 'replica 127.0.0.1:%d has been unreachable' % stack.replica.port in res['msg'] and 'replica_timeout=2' in res['msg'], res['msg']
    assert 'resumes where it stopped' in res['msg']
    # bounded: replica_timeout, plus (frozen) the read that hung and one connection attempt, each capped at replica_timeout
    assert failed_after < 2 + (4 if how == 'frozen' else 0) + 1.5, failed_after
    done_before = checkpoint(rdb)[0]
    assert 0 < done_before < 200000 and checkpoint(rdb)[3] == 'running'
    again = run_module('mysql_trigger_sync', args)
    assert not again.get('failed'), again
    assert again['backfill']['resumed_from'] is not None and 0 < again['backfill']['rows_copied'] <= 200000 - done_before
    assert again['verify']['mismatches'] == 0
    assert same_data_on_the_replica(stack, rdb)


# ------------------------------------------------------------------------------------------ checks before any change

@pytest.fixture
def server_setting(stack):
    """Set a global variable of the primary for one test; its former value comes back afterwards."""
    changed = []

    def change(name, value):
        with stack.mariadb.root_connect() as conn, conn.cursor() as cur:
            cur.execute('SELECT @@GLOBAL.%s' % name)
            changed.append((name, cur.fetchone()[0]))
            cur.execute('SET GLOBAL %s = %%s' % name, (value,))
    yield change
    with stack.mariadb.root_connect() as conn, conn.cursor() as cur:
        for name, value in reversed(changed):
            cur.execute('SET GLOBAL %s = %%s' % name, (value,))


@pytest.mark.parametrize('name, value, message', [
    ('binlog_format', 'STATEMENT', "binary logging is on with binlog_format=STATEMENT: InnoDB refuses to log the backfill's READ "
                                   "COMMITTED writes as statements, so the copy would fail after the triggers exist. Set "
                                   "binlog_format=ROW (or MIXED)"),
    ('log_bin_trust_function_creators', 0, 'binary logging is on and the login user has neither SUPER nor does the server set '
                                           'log_bin_trust_function_creators=1'),
])
def test_server_settings_that_would_break_the_sync_are_refused_before_any_change(stack, rdb, run_module, server_setting, name, value, message):
    conn = rdb.connect()
    create_users(conn, 100)
    server_setting(name, value)
    res = run_module('mysql_trigger_sync', dict(rdb.params, migration=SEED))
    assert res.get('failed') and message in res['msg'], res
    assert zdt_objects(rdb) == (0, 0, 0)


def test_without_the_check_the_statement_format_fails_after_the_triggers_exist(stack, rdb, server_setting):
    """What the binlog_format check prevents: the copy's first READ COMMITTED write fails with error 1665 when the
    forward triggers are already in place."""
    conn = rdb.connect()
    create_users(conn, 100)
    server_setting('binlog_format', 'STATEMENT')
    copy = rdb.connect()
    from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_runner  # pylint: disable=import-outside-toplevel
    original = sync_runner.check_server
    sync_runner.check_server = lambda conn_, creates_triggers: None
    try:
        with pytest.raises(Exception, match='1665.*BINLOG_FORMAT = STATEMENT'):
            sync_present(copy, rdb.name, parse_migration(SEED))
    finally:
        sync_runner.check_server = original
    assert zdt_objects(rdb)[0] > 0


class ReportsVersion(object):
    """A real connection that reports another server version (what no sandbox server can be made to do)."""

    def __init__(self, conn, version):
        self.conn, self.version = conn, version

    def cursor(self):
        cursor, version = self.conn.cursor(), self.version

        class Cursor(object):
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                cursor.close()
                return False

            def execute(self, sql, args=None):
                self.fake = sql == 'SELECT VERSION()'
                return None if self.fake else cursor.execute(sql, args)

            def fetchall(self):
                return ((version,),) if self.fake else cursor.fetchall()

            def fetchone(self):
                return (version,) if self.fake else cursor.fetchone()

            def __getattr__(self, name):
                return getattr(cursor, name)
        return Cursor()

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_an_old_server_version_is_refused_before_any_change(rdb):
    conn = rdb.connect()
    create_users(conn, 10)
    with pytest.raises(DatabaseError, match=r'server version 10\.1\.48-MariaDB is too old for the sync: it needs MariaDB 10\.2\.3'):
        sync_present(ReportsVersion(rdb.connect(), '10.1.48-MariaDB'), rdb.name, parse_migration(SEED))
    assert zdt_objects(rdb) == (0, 0, 0)


@pytest.fixture(scope='module')
def galera(sandbox_factory):
    """A single-node Galera cluster (galera-4 bootstrapping a new cluster), its group communication on loopback."""
    from zdt_lab.sandbox import free_port  # pylint: disable=import-outside-toplevel
    options = {'wsrep-on': 'ON', 'wsrep-provider': '/usr/lib/galera/libgalera_smm.so', 'wsrep-cluster-address': 'gcomm://',
               'wsrep-node-address': '127.0.0.1', 'binlog-format': 'ROW', 'innodb-autoinc-lock-mode': 2,
               'wsrep-provider-options': 'gmcast.listen_addr=tcp://127.0.0.1:%d;ist.recv_addr=127.0.0.1:%d' % (free_port(), free_port()),
               'wsrep-sst-receive-address': '127.0.0.1:%d' % free_port()}
    if not os.path.exists(options['wsrep-provider']):
        pytest.skip('galera-4 is not installed')
    yield from sandbox_factory('zdt-it-galera-', options=options)


def test_a_galera_node_is_refused_before_any_change(galera, database_factory, run_module):
    for gdb in database_factory(galera.mariadb):
        assert gdb.query("SHOW STATUS LIKE 'wsrep_ready'") == (('wsrep_ready', 'ON'),)
        create_users(gdb.root_connect(), 10)
        res = run_module('mysql_trigger_sync', dict(gdb.params, migration=SEED))
        assert res.get('failed') and 'the server is a Galera cluster node (wsrep_on=ON): the sync does not support Galera yet' in res['msg'], res
        assert zdt_objects(gdb) == (0, 0, 0)


def test_replicas_that_cannot_be_used_are_refused_before_any_change(stack, rdb, run_module):
    conn = rdb.connect()
    create_users(conn, 10)
    # the primary's own address
    res = run_module('mysql_trigger_sync', dict(rdb.params, migration=SEED, replicas=[{'login_host': '127.0.0.1'}]))
    assert res.get('failed') and res['msg'] == 'replicas[0]: is the primary itself (127.0.0.1:%d)' % stack.mariadb.port, res
    # another way to the primary: same server_id
    res = run_module('mysql_trigger_sync', dict(rdb.params, migration=SEED, replicas=[
        {'login_unix_socket': stack.mariadb.socket, 'login_user': 'root', 'login_password': ''}]))
    assert res.get('failed') and "has the primary's server_id 1" in res['msg'], res
    # nothing listens there
    from zdt_lab.sandbox import free_port  # pylint: disable=import-outside-toplevel
    t0 = time.time()
    res = run_module('mysql_trigger_sync', dict(rdb.params, migration=SEED, replicas=[{'login_port': free_port()}], replica_timeout=1))
    assert res.get('failed') and 'cannot be reached' in res['msg'] and 'nothing was changed' in res['msg'], res
    assert time.time() - t0 < 10
    res = run_module('mysql_trigger_sync', dict(rdb.params, migration=SEED, replicas=[{'login_port': 0}]))
    assert res.get('failed') and res['msg'] == 'replicas[0].login_port must be at least 1, got 0', res
    assert zdt_objects(rdb) == (0, 0, 0)


# ------------------------------------------------------------------------------------------ verify_replicas

def test_verify_replicas_while_writers_write(stack, rdb):
    replicas = replicas_from_params(dict(rdb.params), [{'login_port': stack.replica.port}])

    def sync(conn, database, migration, **args):
        return sync_present(conn, database, parse_migration(migration), replicas=replicas, verify_replicas=args.get('backfill', True),
                            **args)
    result, model, ops = cross_race(rdb, sync, seed=400)
    assert ops > 500 and result['verify']['mismatches'] == 0
    [checked] = result['verify_replicas']
    assert checked['replica'] == '127.0.0.1:%d' % stack.replica.port
    assert checked['mismatches'] == 0 and checked['rows_checked'] > 8000, checked
    assert cross_differences(rdb.connect(), model) == {}
    assert same_data_on_the_replica(stack, rdb)


def test_verify_replicas_finds_a_replica_that_differs(stack, rdb, run_module):
    conn = rdb.connect()
    create_users(conn, 3000)
    first = run_module('mysql_trigger_sync', dict(rdb.params, migration=SEED, **replica_args(stack, verify_replicas=True)))
    assert not first.get('failed') and first['verify_replicas'][0]['mismatches'] == 0, first
    stack.replica.wait_caught_up(30)
    with stack.replica.root_connect(rdb.name) as replica:
        execute(replica, 'SET GLOBAL read_only = 0')
        try:
            execute(replica, "UPDATE addresses SET address_line_1 = 'drift' WHERE user_id IN (7, 2500)")
            execute(replica, "UPDATE users SET address_line_2 = 'drift' WHERE id = 11")
        finally:
            execute(replica, 'SET GLOBAL read_only = 1')
    res = run_module('mysql_trigger_sync', dict(rdb.params, migration=SEED, **replica_args(stack, verify_replicas=True)))
    assert res.get('failed'), res
    assert res['msg'] == 'verify_replicas: replica 127.0.0.1:%d differs from the primary in 3 row(s); first keys: 7, 11, 2500' % stack.replica.port
    assert res['verify_replicas'][0]['keys'] == [7, 11, 2500]
    assert expected_addresses(snapshot_cross(conn)[0]) == snapshot_cross(conn)[1]   # the primary is fine


def test_verify_replicas_needs_replicas(rdb, run_module):
    create_users(rdb.connect(), 10)
    res = run_module('mysql_trigger_sync', dict(rdb.params, migration=SEED, verify_replicas=True))
    assert res.get('failed') and res['msg'] == 'verify_replicas: needs at least one entry in replicas', res
