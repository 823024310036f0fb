"""The sandbox stack: start, stop, restart after a crash, port collisions, stale pid files."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from zdt_lab.sandbox import PidFile, PortInUse, Sandbox, SandboxError, pid_alive, port_accepts, port_is_free


@pytest.fixture
def stack(tmp_path):
    sandbox = Sandbox(str(tmp_path / 'sb'), preferred_ports={})
    yield sandbox
    sandbox.stop_all()


def _wait_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_mariadb_and_haproxy_start_and_stop(stack):
    stack.mariadb.start()
    stack.haproxy.start()
    db_pid, lb_pid = stack.mariadb.pid, stack.haproxy.pid
    assert port_accepts(stack.ports['mariadb']) and port_accepts(stack.ports['lb'])
    with stack.mariadb.app_connect() as conn, conn.cursor() as cur:
        cur.execute('SELECT CURRENT_USER()')
        assert cur.fetchone()[0].startswith('zdt@')
    assert os.stat(stack.haproxy.stats_socket).st_mode & 0o777 == 0o600
    assert os.stat(stack.haproxy.master_socket).st_mode & 0o777 == 0o600
    # Starting again is a no-op on a live stack.
    stack.mariadb.start()
    stack.haproxy.start()
    assert (stack.mariadb.pid, stack.haproxy.pid) == (db_pid, lb_pid)
    stack.stop_all()
    assert _wait_gone(db_pid) and _wait_gone(lb_pid)
    assert port_is_free(stack.ports['mariadb']) and port_is_free(stack.ports['lb'])
    assert stack.status() == {}


def test_restart_after_crash(stack):
    stack.mariadb.start()
    with stack.mariadb.root_connect() as conn, conn.cursor() as cur:
        cur.execute('CREATE DATABASE survivor')
    pid = stack.mariadb.pid
    os.kill(pid, signal.SIGKILL)
    assert _wait_gone(pid)
    assert stack.status()['mariadb']['stale'] is True
    assert not stack.mariadb.running
    stack.mariadb.start()
    assert stack.mariadb.pid != pid
    with stack.mariadb.root_connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'survivor'")
        assert cur.fetchone() == ('survivor',)


def test_reused_pid_is_not_mistaken_for_the_service(stack):
    """A pid file whose pid now belongs to another process (here: this test) is stale."""
    pidfile = PidFile(os.path.join(stack.run_dir, 'mariadb.pid'))
    with open(pidfile.path, 'w', encoding='utf-8') as handle:
        json.dump({'pid': os.getpid(), 'start_time': 1, 'argv': ['mariadbd']}, handle)
    assert pidfile.live_pid() is None
    stack.mariadb.start()
    assert stack.mariadb.pid != os.getpid()


def test_half_initialised_datadir_is_rebuilt(stack):
    os.makedirs(os.path.join(stack.mariadb.datadir, 'junk'))
    stack.mariadb.start()
    assert not os.path.exists(os.path.join(stack.mariadb.datadir, 'junk'))


def test_replica_replicates_over_loopback_with_gtid_and_stops_by_pid(stack):
    stack.mariadb.configure(log_bin=True)
    stack.mariadb.start()
    stack.replica.start()
    ports = stack.ports
    assert ports['replica'] not in (ports['mariadb'], ports['lb'], ports['blue'], ports['green'])
    assert stack.replica.socket != stack.mariadb.socket and stack.replica.datadir != stack.mariadb.datadir
    status = stack.replica.status()
    assert (status['Master_Host'], status['Master_Port'], status['Using_Gtid']) == ('127.0.0.1', ports['mariadb'], 'Slave_Pos')
    stack.mariadb.create_database('shared')
    with stack.mariadb.app_connect('shared') as conn, conn.cursor() as cur:
        cur.execute('CREATE TABLE t (id INT PRIMARY KEY)')
        cur.execute('INSERT INTO t VALUES (1)')
    stack.replica.wait_caught_up(10)
    with stack.replica.app_connect('shared') as conn, conn.cursor() as cur:
        cur.execute('SELECT id FROM t')
        assert cur.fetchall() == ((1,),)
        with pytest.raises(Exception, match='read-only'):
            cur.execute('INSERT INTO t VALUES (2)')
    # a stopped SQL thread lags; started again it catches up
    stack.replica.stop_sql_thread()
    with stack.mariadb.app_connect('shared') as conn, conn.cursor() as cur:
        cur.execute('INSERT INTO t VALUES (3)')
    with pytest.raises(SandboxError, match='did not reach'):
        stack.replica.wait_caught_up(1)
    stack.replica.start_sql_thread()
    stack.replica.wait_caught_up(10)
    pids = (stack.mariadb.pid, stack.replica.pid)
    stack.stop_all()
    assert all(_wait_gone(pid) for pid in pids) and stack.status() == {}
    # settings survive: the primary starts again with its binary log, the replica resumes where it was
    stack.mariadb.start()
    stack.replica.start()
    with stack.replica.root_connect() as conn, conn.cursor() as cur:
        cur.execute('SELECT COUNT(*) FROM shared.t')
        assert cur.fetchone() == (2,)


def test_replica_needs_the_primarys_binary_log_from_its_start(stack):
    stack.mariadb.start()
    with pytest.raises(SandboxError, match='log_bin=True'):
        stack.replica.start()
    assert not stack.replica.running


def test_port_collision_is_refused(stack):
    port = stack.ports['mariadb']
    with socket.socket() as blocker:
        blocker.bind(('127.0.0.1', port))
        blocker.listen(1)
        with pytest.raises(PortInUse, match='port %d' % port):
            stack.mariadb.start()
    assert not stack.mariadb.running


def test_busy_preferred_port_is_replaced(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(('127.0.0.1', 0))
        blocker.listen(1)
        busy = blocker.getsockname()[1]
        sandbox = Sandbox(str(tmp_path / 'p'), preferred_ports={'mariadb': busy})
        assert sandbox.ports['mariadb'] != busy
    # Persisted: the same state directory keeps its ports.
    assert Sandbox(str(tmp_path / 'p')).ports == sandbox.ports


def test_haproxy_reload_keeps_runtime_state(stack):
    stack.haproxy.start()
    stack.haproxy.admin_command('set server app/green1 state maint')
    old_workers = stack.haproxy.worker_pids()
    new_worker = stack.haproxy.reload()
    assert new_worker not in old_workers
    state = stack.haproxy.admin_command('show servers state app')
    green = [line.split() for line in state.splitlines() if ' green1 ' in line][0]
    assert int(green[6]) & 1  # srv_admin_state: forced maintenance survived the reload


def _processes_mentioning(text):
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                cmdline = handle.read().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if text in cmdline and int(entry) != os.getpid():
            found.append((int(entry), cmdline))
    return found


@pytest.mark.skipif(os.environ.get('ZDT_DELIBERATE_FAILURE') != '1', reason='run only by test_failed_test_leaves_nothing')
def test_deliberate_failure(mariadb):
    mariadb.create_database('doomed')
    assert False, 'this test fails on purpose'


def test_failed_test_leaves_nothing_behind(tmp_path):
    """A failing test still stops every sandbox process and frees its ports."""
    root = str(tmp_path / 'failing-run')
    env = dict(os.environ, ZDT_DELIBERATE_FAILURE='1', ZDT_IT_SANDBOX_ROOT=root)
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           __file__ + '::test_deliberate_failure'], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=False, timeout=120)
    output = proc.stdout.decode(errors='replace')
    assert proc.returncode == 1 and 'this test fails on purpose' in output, output
    with open(os.path.join(root, 'ports.json'), encoding='utf-8') as handle:
        ports = json.load(handle)
    assert _processes_mentioning(root) == []
    assert all(port_is_free(port) for port in ports.values())
