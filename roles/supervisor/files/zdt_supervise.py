#!/usr/bin/env python
"""Process supervisor for hosts without systemd (self-contained, Python 3 standard library only, Linux).

    zdt_supervise.py start  --pidfile P --log L [--cwd D] [--env-file F ...] [--user U] [--port N] [--host H]
                            [--timeout S] [--stop-timeout S] -- ARGV...
    zdt_supervise.py stop   --pidfile P [--timeout S]
    zdt_supervise.py status --pidfile P
    zdt_supervise.py run    [--cwd D] [--env-file F ...] [--user U] -- ARGV...

``start`` runs ARGV under a supervisor process (``supervise``) that restarts it when it dies on a signal or
with a non-zero status (like systemd's Restart=on-failure: after 0.5 s, doubling up to 10 s, back to 0.5 s
once it ran 30 s), stops it on SIGTERM (SIGTERM to its process group, SIGKILL after --stop-timeout), and
writes ARGV's output to the log.  The service runs as --user (its groups, HOME, USER set) in a clean
environment: PATH, LANG, HOME, USER, LOGNAME plus the KEY=VALUE lines of the env files.  ``start`` is
idempotent: the same ARGV, environment, user and directory already running reports changed=false; anything
else is stopped first.  It returns once the service accepts connections on --host:--port (when given), and
fails with the log's last lines when the service exits or does not listen within --timeout.

The pid file is JSON {pid, start_time, argv, env_sha, user, cwd, stop_timeout} of the supervisor; start_time
is the kernel start time of the process (field 22 of /proc/PID/stat), so a stale file whose pid was reused is
never taken for the service; a zombie thread-group leader whose other threads still run counts as running.
The service's own pid and restart count are in <pidfile>.child.  The service is killed if the supervisor dies.

``run`` executes ARGV in the foreground with the same user and environment (an install step).
Every command but ``run`` prints one JSON object: {changed, running, pid, ...}.
"""
import argparse
import ctypes
import hashlib
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
PR_SET_PDEATHSIG = 1
RESTART_FIRST = 0.5
RESTART_MAX = 10.0
RESTART_RESET_AFTER = 30.0


def start_time_of(pid):
    """Kernel start time of pid (clock ticks since boot, field 22 of /proc/PID/stat), None when it is gone.

    A zombie whose threads are all gone is gone; a zombie thread-group leader whose other threads still
    run is not: they hold the process's files (its ports) until they exit.
    """
    try:
        with open('/proc/%d/stat' % pid, 'r', encoding='ascii', errors='replace') as handle:
            # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
            fields = handle.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == 'Z' and not other_threads_alive(pid):
        return None
    return int(fields[19])


def other_threads_alive(pid):
    """True while pid has a thread besides its leader (a zombie leader lists its running threads in task/)."""
    try:
        return len(os.listdir('/proc/%d/task' % pid)) > 1
    except OSError:
        return False


def read_record(path):
    try:
        with open(path, 'r', encoding='utf-8') as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def live_record(path):
    record = read_record(path)
    if not record or not isinstance(record.get('pid'), int):
        return None
    start = start_time_of(record['pid'])
    if start is None or start != record.get('start_time'):
        return None
    return record


def write_record(path, record):
    tmp = path + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, 'w', encoding='utf-8') as handle:
        json.dump(record, handle)
    os.replace(tmp, path)


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _unquote(value):
    """A value of an env file line: as is, or inside double quotes with \\" and \\\\ escapes (systemd's format)."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    out, escaped = [], False
    for char in value[1:-1]:
        if escaped:
            out.append(char)
            escaped = False
        elif char == '\\':
            escaped = True
        else:
            out.append(char)
    return ''.join(out)


def read_env_files(paths):
    """KEY=VALUE lines of the files in order (comments and blank lines skipped), and a digest of their contents."""
    env = {}
    digest = hashlib.sha256()
    for path in paths or ():
        with open(path, 'rb') as handle:
            data = handle.read()
        digest.update(path.encode('utf-8') + b'\0' + data + b'\0')
        for raw in data.decode('utf-8').splitlines():
            line = raw.strip()
            if not line or line.startswith('#') or '=' not in line:
                continue
            key, value = line.split('=', 1)
            env[key.strip()] = _unquote(value)
    return env, digest.hexdigest() if paths else ''


def service_env(user, files):
    """The clean environment of the service: the basics for its user, then the env files."""
    env = {'PATH': DEFAULT_PATH, 'LANG': os.environ.get('LANG') or 'C.UTF-8'}
    if user:
        entry = pwd.getpwnam(user)
        env.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    else:
        env.update(HOME=os.environ.get('HOME', '/'), USER=os.environ.get('USER', 'root'), LOGNAME=os.environ.get('LOGNAME', 'root'))
    extra, _digest = read_env_files(files)
    env.update(extra)
    return env


def become(user, die_with_parent):
    """A preexec function: own process group, the user's groups and ids, killed when the supervisor dies."""
    entry = pwd.getpwnam(user) if user else None

    def preexec():
        os.setpgid(0, 0)
        if entry is not None and os.getuid() != entry.pw_uid:
            os.initgroups(entry.pw_name, entry.pw_gid)
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
        if die_with_parent:
            # after the id change: changing credentials clears the parent-death signal
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return preexec


def port_accepts(port, host):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def terminate(record, timeout):
    pid = record['pid']
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 'gone'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if start_time_of(pid) != record['start_time']:
            return 'SIGTERM'
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return 'SIGTERM'
    for _attempt in range(200):
        if start_time_of(pid) != record['start_time']:
            return 'SIGKILL'
        time.sleep(0.05)
    raise RuntimeError('pid %d did not exit after SIGKILL' % pid)


def child_path(pidfile):
    return pidfile + '.child'


def log_line(log, text):
    log.write(('%s zdt_supervise: %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%S'), text)).encode('utf-8'))
    log.flush()


def tail(path, lines=15):
    try:
        with open(path, 'r', encoding='utf-8', errors='replace') as handle:
            return ''.join(handle.readlines()[-lines:])
    except OSError:
        return ''


# ---------------------------------------------------------------- the supervisor process

class Supervisor(object):
    """Runs the service, restarts it when it fails, stops it on SIGTERM."""

    def __init__(self, args, argv):
        self.args = args
        self.argv = argv
        self.stopping = False
        self.child = None
        self.restarts = 0

    def on_term(self, _signum, _frame):
        self.stopping = True

    def record_child(self, last_exit=None):
        child = self.child
        write_record(child_path(self.args.pidfile), {
            'pid': child.pid if child else None, 'start_time': start_time_of(child.pid) if child else None,
            'restarts': self.restarts, 'last_exit': last_exit})

    def spawn(self, log):
        env = service_env(self.args.user, self.args.env_file)
        self.child = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.args.cwd,
                                      env=env, close_fds=True, preexec_fn=become(self.args.user, True))
        log_line(log, 'started %s as pid %d' % (self.argv[0], self.child.pid))

    def stop_child(self, log):
        if self.child is None or self.child.poll() is not None:
            return
        try:
            os.killpg(self.child.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + self.args.stop_timeout
        while time.monotonic() < deadline and self.child.poll() is None:
            time.sleep(0.05)
        if self.child.poll() is None:
            log_line(log, 'pid %d still running after %ss: SIGKILL' % (self.child.pid, self.args.stop_timeout))
            try:
                os.killpg(self.child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.child.wait()
        else:
            try:
                os.killpg(self.child.pid, signal.SIGKILL)   # whatever the service left in its group
            except ProcessLookupError:
                pass

    def run(self):
        signal.signal(signal.SIGTERM, self.on_term)
        signal.signal(signal.SIGINT, self.on_term)
        delay = RESTART_FIRST
        with open(self.args.log, 'ab') as log:
            while not self.stopping:
                started = time.monotonic()
                self.spawn(log)
                self.record_child()
                while not self.stopping and self.child.poll() is None:
                    time.sleep(0.1)
                if self.stopping:
                    break
                code = self.child.returncode
                how = 'signal %d' % -code if code < 0 else 'status %d' % code
                if code == 0:
                    log_line(log, 'pid %d exited with status 0: not restarted' % self.child.pid)
                    self.record_child(last_exit=how)
                    return 0
                if time.monotonic() - started >= RESTART_RESET_AFTER:
                    delay = RESTART_FIRST
                self.restarts += 1
                self.record_child(last_exit=how)
                log_line(log, 'pid %d died (%s): restart %d in %.1fs' % (self.child.pid, how, self.restarts, delay))
                end = time.monotonic() + delay
                while not self.stopping and time.monotonic() < end:
                    time.sleep(0.05)
                delay = min(RESTART_MAX, delay * 2)
            log_line(log, 'stopping pid %d' % self.child.pid)
            self.stop_child(log)
            log_line(log, 'stopped')
        return 0


# ---------------------------------------------------------------- commands

def identity(args, argv):
    _env, env_sha = read_env_files(args.env_file)
    return {'argv': argv, 'env_sha': env_sha, 'user': args.user or None, 'cwd': os.path.abspath(args.cwd) if args.cwd else None}


def cmd_status(args):
    record = live_record(args.pidfile)
    child = read_record(child_path(args.pidfile)) if record else None
    return {'changed': False, 'running': record is not None, 'pid': record['pid'] if record else None,
            'argv': record.get('argv') if record else None,
            'child_pid': child.get('pid') if child else None, 'restarts': child.get('restarts') if child else None}


def cmd_stop(args):
    record = live_record(args.pidfile)
    if record is None:
        existed = os.path.exists(args.pidfile)
        remove(args.pidfile)
        remove(child_path(args.pidfile))
        return {'changed': False, 'running': False, 'pid': None, 'stale_pidfile_removed': existed}
    timeout = max(args.timeout, float(record.get('stop_timeout') or 0) + 5)
    how = terminate(record, timeout)
    remove(args.pidfile)
    remove(child_path(args.pidfile))
    return {'changed': True, 'running': False, 'pid': record['pid'], 'stopped_by': how}


def cmd_start(args):
    argv = args.argv[1:] if args.argv[:1] == ['--'] else args.argv
    if not argv:
        raise RuntimeError('start needs the command after --')
    if args.user:
        try:
            pwd.getpwnam(args.user)
        except KeyError:
            raise RuntimeError('no such user: %s' % args.user)
    want = identity(args, argv)
    record = live_record(args.pidfile)
    result = {'changed': False}
    if record is not None:
        if all(record.get(k) == v for k, v in want.items()):
            return {'changed': False, 'running': True, 'pid': record['pid']}
        result['replaced'] = {'pid': record['pid'], 'stopped_by': terminate(record, float(record.get('stop_timeout') or 0) + 5)}
    remove(args.pidfile)
    remove(child_path(args.pidfile))
    for directory in (os.path.dirname(os.path.abspath(args.pidfile)), os.path.dirname(os.path.abspath(args.log))):
        os.makedirs(directory, exist_ok=True)
    cmd = [sys.executable, os.path.abspath(__file__), 'supervise', '--pidfile', args.pidfile, '--log', args.log,
           '--stop-timeout', str(args.stop_timeout)]
    for option in ('cwd', 'user'):
        if getattr(args, option):
            cmd += ['--' + option, getattr(args, option)]
    for path in args.env_file or ():
        cmd += ['--env-file', path]
    with open(os.devnull, 'rb') as null_in, open(args.log, 'ab') as log:
        proc = subprocess.Popen(cmd + ['--'] + argv, stdin=null_in, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True)
    record = dict(want, pid=proc.pid, start_time=start_time_of(proc.pid), stop_timeout=args.stop_timeout)
    write_record(args.pidfile, record)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        child = read_record(child_path(args.pidfile)) or {}
        if proc.poll() is not None or child.get('last_exit'):
            terminate(record, args.stop_timeout + 5)
            remove(args.pidfile)
            raise RuntimeError('%s exited (%s) during start; last log lines:\n%s'
                               % (argv[0], child.get('last_exit') or 'supervisor status %s' % proc.returncode, tail(args.log)))
        if child.get('pid') and (args.port is None or port_accepts(args.port, args.host)):
            result.update(changed=True, running=True, pid=proc.pid, child_pid=child['pid'])
            return result
        time.sleep(0.05)
    terminate(record, args.stop_timeout + 5)
    remove(args.pidfile)
    raise RuntimeError('%s did not listen on %s:%s within %ss; last log lines:\n%s'
                       % (argv[0], args.host, args.port, args.timeout, tail(args.log)))


def cmd_supervise(args):
    argv = args.argv[1:] if args.argv[:1] == ['--'] else args.argv
    return Supervisor(args, argv).run()


def cmd_run(args):
    argv = args.argv[1:] if args.argv[:1] == ['--'] else args.argv
    if not argv:
        raise RuntimeError('run needs the command after --')
    env = service_env(args.user, args.env_file)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd=args.cwd, env=env, close_fds=True, preexec_fn=become(args.user, False))
    return proc.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    sub = parser.add_subparsers(dest='action', required=True)
    for name in ('start', 'stop', 'status', 'supervise', 'run'):
        part = sub.add_parser(name)
        if name != 'run':
            part.add_argument('--pidfile', required=True)
        part.add_argument('--timeout', type=float, default=20.0)
        if name in ('start', 'supervise', 'run'):
            part.add_argument('--cwd', default=None)
            part.add_argument('--env-file', action='append', default=[])
            part.add_argument('--user', default=None)
            part.add_argument('argv', nargs=argparse.REMAINDER)
        if name in ('start', 'supervise'):
            part.add_argument('--log', required=True)
            part.add_argument('--stop-timeout', type=float, default=20.0)
        if name == 'start':
            part.add_argument('--port', type=int, default=None)
            part.add_argument('--host', default='127.0.0.1')
    args = parser.parse_args(argv)
    try:
        if args.action == 'supervise':
            return cmd_supervise(args)
        if args.action == 'run':
            return cmd_run(args)
        result = {'start': cmd_start, 'stop': cmd_stop, 'status': cmd_status}[args.action](args)
    except (RuntimeError, OSError, KeyError) as exc:
        print(json.dumps({'changed': False, 'failed': True, 'msg': str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
