#!/usr/bin/env python
"""Hitless HAProxy reload through the master CLI, keeping the runtime server states.

    zdt_haproxy_reload.py --admin-socket A --master-socket M --state-file S [--timeout 15] [--keep-state-file]

1. ``show servers state`` on the admin socket is written atomically to the server-state file, so the
   new worker (``load-server-state-from-file``) starts with the admin states and weights set at run time.
   With ``--keep-state-file`` (the admin socket was lost) the file as the last switch wrote it is kept.
2. ``reload`` on the master socket; HAProxy 2.6 answers nothing, so success is read back from
   ``show proc``: a new current worker must appear (the old one may stay while it finishes its
   connections).  Prints one JSON object; exit 1 when the reload did not take.
Standard library only; used by the systemd unit's ExecReload and by the role's handler.
"""
import argparse
import json
import os
import socket
import sys
import time


def ask(path, command, timeout):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(command.encode() + b'\n')
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            chunks.append(data)
    return b''.join(chunks).decode(errors='replace')


def workers(master_socket, timeout):
    """Pids of the current workers (``show proc`` lines of type worker with reloads == 0)."""
    # The master CLI keeps the connection open after a reply (HAProxy 2.6): quit, or the read waits for the timeout.
    text = ask(master_socket, 'show proc;quit', timeout)
    current = []
    section = None
    for line in text.splitlines():
        if line.startswith('#'):
            section = line
            continue
        fields = line.split()
        if len(fields) >= 3 and fields[1] == 'worker' and fields[0].isdigit():
            if 'old workers' in (section or '').lower():
                continue
            if fields[2] == '0':
                current.append(int(fields[0]))
    return current


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--admin-socket', required=True)
    parser.add_argument('--master-socket', required=True)
    parser.add_argument('--state-file', required=True)
    parser.add_argument('--timeout', type=float, default=15.0)
    parser.add_argument('--keep-state-file', action='store_true')
    args = parser.parse_args(argv)
    try:
        if not args.keep_state_file:
            state = ask(args.admin_socket, 'show servers state', 5)
            if not state.lstrip().startswith('1'):
                raise RuntimeError('unexpected "show servers state" reply: %r' % state[:200])
            tmp = args.state_file + '.tmp'
            with open(tmp, 'w', encoding='utf-8') as handle:
                handle.write(state)
            os.replace(tmp, args.state_file)
        before = workers(args.master_socket, 5)
        ask(args.master_socket, 'reload', 2)
        deadline = time.monotonic() + args.timeout
        after = before
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                after = workers(args.master_socket, 5)
            except OSError:
                continue  # the master re-executes itself; its socket is back in a moment
            if after and not set(after) & set(before):
                print(json.dumps({'changed': True, 'before': before, 'after': after}))
                return 0
        raise RuntimeError('HAProxy did not start a new worker within %ss (workers before %s, now %s); '
                           'check the configuration and the HAProxy log' % (args.timeout, before, after))
    except (OSError, RuntimeError) as exc:
        print(json.dumps({'changed': False, 'failed': True, 'msg': str(exc)}))
        return 1


if __name__ == '__main__':
    sys.exit(main())
