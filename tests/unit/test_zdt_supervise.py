"""Unit tests of the pid-file supervisor's process checks (roles/supervisor/files/zdt_supervise.py), which the
sandbox uses too: start time, zombies, pid-file records, stop."""
import json
import os
import platform
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from zdt_lab import sandbox
from zdt_lab.supervisor import zdt_supervise

# exit(2) ends only the calling thread (exit_group would end them all).
SYS_EXIT = {'x86_64': 60, 'aarch64': 93}.get(platform.machine())

# The leader thread exits; a second thread keeps the process until its stdin closes.
ZOMBIE_LEADER = r'''
import ctypes, sys, threading
threading.Thread(target=sys.stdin.read).start()
print('ready', flush=True)
ctypes.CDLL(None).syscall(int(sys.argv[1]), 0)
'''


def proc_state(pid):
    with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as handle:
        return handle.read().rsplit(')', 1)[1].split()[0]


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.01)


def boot_time():
    with open('/proc/stat', encoding='ascii') as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith('btime '))


@pytest.fixture
def children():
    """Processes a test starts; killed and reaped at the end whatever happened."""
    started = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def start(children, argv, **kwargs):
    proc = subprocess.Popen(argv, **kwargs)
    children.append(proc)
    return proc


# ---------------------------------------------------------------- start time

def test_start_time_is_the_kernel_start_time_even_with_parentheses_in_the_name(children):
    # The command name (field 2) may hold ') (': the fields are counted after the last ')'.
    launched = time.time()
    proc = start(children, [sys.executable, '-c', 'import ctypes, sys; ctypes.CDLL(None).prctl(15, b"a) (b", 0, 0, 0); '
                            'print("ready", flush=True); sys.stdin.read()'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b'ready\n'
    with open('/proc/%d/comm' % proc.pid, encoding='ascii') as handle:
        assert handle.read().strip() == 'a) (b'
    ticks = zdt_supervise.start_time_of(proc.pid)
    assert isinstance(ticks, int)
    assert abs(boot_time() + ticks / os.sysconf('SC_CLK_TCK') - launched) < 3
    assert zdt_supervise.start_time_of(proc.pid) == ticks   # the same process, the same start time


def test_a_pid_that_does_not_exist_has_no_start_time():
    with open('/proc/sys/kernel/pid_max', encoding='ascii') as handle:
        beyond = int(handle.read()) + 1
    assert zdt_supervise.start_time_of(beyond) is None
    assert not sandbox.pid_alive(beyond)


def test_a_zombie_whose_threads_are_all_gone_is_gone(children):
    proc = start(children, ['true'])
    wait_for(lambda: proc_state(proc.pid) == 'Z')   # exited, not reaped yet: the pid still has a /proc entry
    assert zdt_supervise.start_time_of(proc.pid) is None
    assert not sandbox.pid_alive(proc.pid)
    proc.wait()
    assert zdt_supervise.start_time_of(proc.pid) is None


@pytest.mark.skipif(SYS_EXIT is None, reason='exit(2) syscall number unknown on %s' % platform.machine())
def test_a_zombie_leader_whose_other_threads_still_run_is_alive(children):
    proc = start(children, [sys.executable, '-c', ZOMBIE_LEADER, str(SYS_EXIT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b'ready\n'
    before = zdt_supervise.start_time_of(proc.pid)
    wait_for(lambda: proc_state(proc.pid) == 'Z')    # the leader thread is gone ...
    assert zdt_supervise.other_threads_alive(proc.pid)  # ... its second thread is not
    assert zdt_supervise.start_time_of(proc.pid) == before
    assert sandbox.pid_alive(proc.pid)
    proc.stdin.close()                                  # the last thread ends: the process exits
    wait_for(lambda: not zdt_supervise.other_threads_alive(proc.pid))
    assert zdt_supervise.start_time_of(proc.pid) is None
    assert not sandbox.pid_alive(proc.pid)
    assert proc.wait(10) == 0


# ---------------------------------------------------------------- pid-file records

def write(path, record):
    path.write_text(json.dumps(record), encoding='utf-8')
    return str(path)


def test_a_record_is_live_only_while_its_pid_has_its_start_time(tmp_path):
    me = {'pid': os.getpid(), 'start_time': zdt_supervise.start_time_of(os.getpid()), 'argv': ['pytest']}
    assert zdt_supervise.live_record(write(tmp_path / 'live.pid', me)) == me
    reused = dict(me, start_time=me['start_time'] - 1)   # the pid now belongs to another process
    assert zdt_supervise.live_record(write(tmp_path / 'reused.pid', reused)) is None
    assert zdt_supervise.live_record(write(tmp_path / 'nopid.pid', dict(me, pid=str(me['pid'])))) is None
    assert zdt_supervise.live_record(write(tmp_path / 'list.pid', [me])) is None
    (tmp_path / 'garbage.pid').write_text('{', encoding='utf-8')
    assert zdt_supervise.live_record(str(tmp_path / 'garbage.pid')) is None
    assert zdt_supervise.live_record(str(tmp_path / 'missing.pid')) is None


def test_the_sandbox_writes_and_reads_the_supervisor_records(tmp_path, children):
    proc = start(children, ['sleep', '30'])
    pidfile = sandbox.PidFile(str(tmp_path / 'app.pid'))
    pidfile.write(proc.pid, ['sleep', '30'])
    record = zdt_supervise.live_record(pidfile.path)
    assert record == {'pid': proc.pid, 'start_time': zdt_supervise.start_time_of(proc.pid), 'argv': ['sleep', '30']}
    assert pidfile.live_pid() == proc.pid and not pidfile.is_stale()
    proc.kill()
    proc.wait()
    assert pidfile.live_pid() is None and pidfile.is_stale()


# ---------------------------------------------------------------- stop

def test_terminate_stops_with_sigterm(children):
    proc = start(children, ['sleep', '30'])
    record = {'pid': proc.pid, 'start_time': zdt_supervise.start_time_of(proc.pid)}
    assert zdt_supervise.terminate(record, 5) == 'SIGTERM'
    assert proc.wait(5) == -signal.SIGTERM


def test_terminate_kills_what_ignores_sigterm(children):
    proc = start(children, [sys.executable, '-c', 'import signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); '
                            'print("ready", flush=True); sys.stdin.read()'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b'ready\n'
    record = {'pid': proc.pid, 'start_time': zdt_supervise.start_time_of(proc.pid)}
    assert zdt_supervise.terminate(record, 0.3) == 'SIGKILL'
    assert proc.wait(5) == -signal.SIGKILL


# ---------------------------------------------------------------- the supervisor process

SERVICE = r'''
import os, signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *a: (print('graceful stop', flush=True), sys.exit(0)))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(os.environ['ZDT_PORT']))); s.listen(8)
print('serving as', os.environ.get('USER'), 'secret', os.environ.get('SECRET'), 'path', os.environ['PATH'], flush=True)
while True:
    time.sleep(1)
'''


def supervise(*args):
    out = subprocess.run([sys.executable, zdt_supervise.__file__] + list(args), stdout=subprocess.PIPE, check=False, timeout=60)
    return json.loads(out.stdout.decode())


@pytest.fixture
def service(tmp_path):
    """A supervised test service on a free port; stopped at the end."""
    port = sandbox.free_port()
    env = tmp_path / 'env'
    env.write_text('ZDT_PORT=%d\n# a comment\nSECRET="a \\"quoted\\" \\\\ value"\n' % port, encoding='utf-8')
    service = dict(pidfile=str(tmp_path / 'svc.pid'), log=str(tmp_path / 'svc.log'), env=str(env), port=port,
                   script=str(tmp_path / 'svc.py'))
    (tmp_path / 'svc.py').write_text(SERVICE, encoding='utf-8')

    def start(*extra):
        return supervise('start', '--pidfile', service['pidfile'], '--log', service['log'], '--env-file', service['env'],
                         '--port', str(port), '--timeout', '20', '--stop-timeout', '5', *extra, '--', sys.executable, service['script'])
    service['start'] = start
    yield service
    supervise('stop', '--pidfile', service['pidfile'])


def test_start_runs_the_service_in_a_clean_environment_and_is_idempotent(service):
    first = service['start']()
    assert first['changed'] is True and first['running'] is True, first
    again = service['start']()
    assert again == {'changed': False, 'running': True, 'pid': first['pid']}
    log = open(service['log'], encoding='utf-8').read()
    # the env file's double-quoted value with escapes, and no variable of the caller's environment
    assert 'secret a "quoted" \\ value path %s' % zdt_supervise.DEFAULT_PATH in log


def test_a_killed_service_is_restarted_and_stop_is_graceful(service):
    started = service['start']()
    child = supervise('status', '--pidfile', service['pidfile'])['child_pid']
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: supervise('status', '--pidfile', service['pidfile'])['child_pid'] not in (None, child), timeout=10)
    status = supervise('status', '--pidfile', service['pidfile'])
    assert status['running'] and status['pid'] == started['pid'] and status['restarts'] == 1
    assert 'died (signal 9): restart 1' in open(service['log'], encoding='utf-8').read()
    wait_for(lambda: sandbox.port_accepts(service['port']), timeout=10)
    stopped = supervise('stop', '--pidfile', service['pidfile'])
    assert stopped['changed'] is True and stopped['stopped_by'] == 'SIGTERM'
    assert not sandbox.port_accepts(service['port'])
    assert 'graceful stop' in open(service['log'], encoding='utf-8').read()
    assert supervise('stop', '--pidfile', service['pidfile'])['changed'] is False


def test_the_service_dies_with_its_supervisor(service):
    started = service['start']()
    child = supervise('status', '--pidfile', service['pidfile'])['child_pid']
    os.kill(started['pid'], signal.SIGKILL)
    wait_for(lambda: zdt_supervise.start_time_of(child) is None, timeout=10)


def test_a_changed_environment_restarts_the_service(service):
    first = service['start']()
    with open(service['env'], 'a', encoding='utf-8') as handle:
        handle.write('EXTRA=1\n')
    second = service['start']()
    assert second['changed'] is True and second['replaced']['pid'] == first['pid'] and second['pid'] != first['pid']


def test_a_service_that_exits_during_start_fails_with_its_log(tmp_path):
    result = supervise('start', '--pidfile', str(tmp_path / 'p'), '--log', str(tmp_path / 'log'), '--port', '1', '--timeout', '10',
                       '--', sys.executable, '-c', 'import sys; print("bad config"); sys.exit(2)')
    assert result['failed'] and 'exited (status 2) during start' in result['msg'] and 'bad config' in result['msg']
    assert not os.path.exists(str(tmp_path / 'p'))


@pytest.fixture
def shared_dir():
    """A directory another user can read (pytest's own tmp dirs are private to root)."""
    path = tempfile.mkdtemp(prefix='zdt-supervise-')
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def test_run_and_start_as_another_user(shared_dir, tmp_path):
    nobody = pwd.getpwnam('nobody')
    out = subprocess.run([sys.executable, zdt_supervise.__file__, 'run', '--user', 'nobody', '--cwd', shared_dir, '--',
                          'sh', '-c', 'id -un; echo $HOME; pwd'], stdout=subprocess.PIPE, check=True).stdout.decode().split()
    assert out == ['nobody', nobody.pw_dir, shared_dir]
    script = os.path.join(shared_dir, 'svc.py')
    with open(script, 'w', encoding='utf-8') as handle:
        handle.write(SERVICE)
    os.chmod(script, 0o644)
    (tmp_path / 'env').write_text('ZDT_PORT=%d\n' % sandbox.free_port(), encoding='utf-8')
    pidfile = str(tmp_path / 'svc.pid')
    started = supervise('start', '--pidfile', pidfile, '--log', str(tmp_path / 'log'), '--env-file', str(tmp_path / 'env'),
                        '--user', 'nobody', '--cwd', shared_dir, '--', '/usr/bin/python3', script)
    try:
        assert started.get('running'), started
        child = supervise('status', '--pidfile', pidfile)['child_pid']
        assert os.stat('/proc/%d' % child).st_uid == nobody.pw_uid
    finally:
        supervise('stop', '--pidfile', pidfile)
    assert supervise('start', '--pidfile', pidfile, '--log', str(tmp_path / 'log'), '--user', 'no-such-user-zdt', '--',
                     'true')['msg'] == 'no such user: no-such-user-zdt'
