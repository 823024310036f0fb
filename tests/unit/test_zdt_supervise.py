"""Unit tests of the pid-file supervisor's process checks (roles/supervisor/files/zdt_supervise.py), which the
sandbox uses too: start time, zombies, pid-file records, stop."""
import json
import os
import platform
import signal
import subprocess
import sys
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
