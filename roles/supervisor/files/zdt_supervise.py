#!/usr/bin/env python
"""Pid-file supervisor for hosts without systemd (self-contained, standard library only).

    zdt_supervise.py start  --pidfile P --log L [--cwd D] [--env-file F] [--port N] [--host H] [--timeout S] -- argv...
    zdt_supervise.py stop   --pidfile P [--timeout S]
    zdt_supervise.py status --pidfile P

The pid file is JSON {pid, start_time, argv, env_sha}: start_time is the kernel start time of the
process (field 22 of /proc/PID/stat), so a stale file whose pid was reused is never taken for the
service; a zombie thread-group leader whose other threads still run counts as running.  ``start``
is idempotent: the same argv and environment already running reports changed=false; a different
one is stopped first.  ``stop`` sends SIGTERM, waits, then SIGKILL.
Every command prints one JSON object: {changed, running, pid, ...}.
"""
import argparse
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time


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


def read_env_file(path):
    """KEY=VALUE lines (systemd EnvironmentFile subset: comments, blank lines, optional double quotes)."""
    env = {}
    if not path:
        return env, ''
    with open(path, 'rb') as handle:
        data = handle.read()
    for raw in data.decode('utf-8').splitlines():
        line = raw.strip()
        if not line or line.startswith('#') or '=' not in line:
            continue
        key, value = line.split('=', 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        env[key.strip()] = value
    return env, hashlib.sha256(data).hexdigest()


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


def cmd_status(args):
    record = live_record(args.pidfile)
    return {'changed': False, 'running': record is not None, 'pid': record['pid'] if record else None,
            'argv': record.get('argv') if record else None}


def cmd_stop(args):
    record = live_record(args.pidfile)
    if record is None:
        existed = os.path.exists(args.pidfile)
        remove(args.pidfile)
        return {'changed': False, 'running': False, 'pid': None, 'stale_pidfile_removed': existed}
    how = terminate(record, args.timeout)
    remove(args.pidfile)
    return {'changed': True, 'running': False, 'pid': record['pid'], 'stopped_by': how}


def cmd_start(args):
    argv = args.argv[1:] if args.argv[:1] == ['--'] else args.argv
    if not argv:
        raise RuntimeError('start needs the command after --')
    extra_env, env_sha = read_env_file(args.env_file)
    record = live_record(args.pidfile)
    result = {'changed': False}
    if record is not None:
        if record.get('argv') == argv and record.get('env_sha') == env_sha:
            return {'changed': False, 'running': True, 'pid': record['pid']}
        result['replaced'] = {'pid': record['pid'], 'stopped_by': terminate(record, args.timeout)}
    remove(args.pidfile)
    env = dict(os.environ)
    env.update(extra_env)
    for directory in (os.path.dirname(os.path.abspath(args.pidfile)), os.path.dirname(os.path.abspath(args.log))):
        os.makedirs(directory, exist_ok=True)
    with open(args.log, 'ab') as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=args.cwd,
                                env=env, start_new_session=True, close_fds=True)
    record = {'pid': proc.pid, 'start_time': start_time_of(proc.pid), 'argv': argv, 'env_sha': env_sha}
    write_record(args.pidfile, record)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            remove(args.pidfile)
            raise RuntimeError('%s exited with %s during start; last log lines:\n%s' % (argv[0], code, tail(args.log)))
        if args.port is None or port_accepts(args.port, args.host):
            result.update(changed=True, running=True, pid=proc.pid)
            return result
        time.sleep(0.05)
    terminate(record, 10)
    remove(args.pidfile)
    raise RuntimeError('%s did not listen on %s:%s within %ss; last log lines:\n%s'
                       % (argv[0], args.host, args.port, args.timeout, tail(args.log)))


def tail(path, lines=15):
    try:
        with open(path, 'r', encoding='utf-8', errors='replace') as handle:
            return ''.join(handle.readlines()[-lines:])
    except OSError:
        return ''


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    sub = parser.add_subparsers(dest='action', required=True)
    for name in ('start', 'stop', 'status'):
        part = sub.add_parser(name)
        part.add_argument('--pidfile', required=True)
        part.add_argument('--timeout', type=float, default=20.0)
        if name == 'start':
            part.add_argument('--log', required=True)
            part.add_argument('--cwd', default=None)
            part.add_argument('--env-file', default=None)
            part.add_argument('--port', type=int, default=None)
            part.add_argument('--host', default='127.0.0.1')
            part.add_argument('argv', nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        result = {'start': cmd_start, 'stop': cmd_stop, 'status': cmd_status}[args.action](args)
    except (RuntimeError, OSError) as exc:
        print(json.dumps({'changed': False, 'failed': True, 'msg': str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
