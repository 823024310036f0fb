# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HAProxy master process: its CLI (``-S master.sock``: show proc, hitless reload) and the configuration
check ``haproxy -c``. No Ansible import.

The master CLI speaks the same prompt-mode protocol as the stats socket, so the connection, the reply checks
and the errors are haproxy_runtime's.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import subprocess
import time

from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_runtime import (
    CliConnection, HAProxyConnectionError, HAProxyError, expect_header, to_int,
)


class HAProxyReloadError(HAProxyError):
    """A master-socket reload did not produce a new worker."""


class ConfigInvalid(HAProxyError):
    """``haproxy -c`` refused a configuration; ``output`` is what it printed."""

    def __init__(self, path, output):
        self.path = path
        self.output = output
        super(ConfigInvalid, self).__init__('haproxy -c refused %s: %s' % (path, output.strip()))


def parse_show_proc(text):
    """master ``show proc`` -> {'master': {pid, reloads, failed}, 'workers': [{pid, reloads}], 'old_workers': [...]}."""
    if not text.startswith('#<PID>'):
        raise HAProxyError('show proc: unexpected reply: %s' % text.strip()[:300])
    result = {'master': None, 'workers': [], 'old_workers': []}
    section = 'workers'
    for line in text.splitlines()[1:]:
        if line.startswith('#'):
            title = line[1:].strip()
            section = {'workers': 'workers', 'old workers': 'old_workers'}.get(title, 'other')
            continue
        fields = line.split()
        if len(fields) < 3 or not fields[0].isdigit():
            continue
        pid, kind = int(fields[0]), fields[1]
        reloads = to_int(fields[2])
        if kind == 'master':
            failed = 0
            match = re.search(r'\[failed:\s*(\d+)\]', line)
            if match:
                failed = int(match.group(1))
            result['master'] = {'pid': pid, 'reloads': reloads, 'failed': failed}
        elif kind == 'worker' and section in ('workers', 'old_workers'):
            result[section].append({'pid': pid, 'reloads': reloads})
    if result['master'] is None:
        raise HAProxyError('show proc: no master line in: %s' % text.strip()[:300])
    return result


def reload_succeeded(before, after):
    """Compare two parsed ``show proc``: True when a new current worker exists, False when the reload failed,
    None when the master has not re-executed yet."""
    if after['master']['reloads'] <= before['master']['reloads']:
        return None
    old_pids = set(w['pid'] for w in before['workers'] + before['old_workers'])
    for worker in after['workers']:
        if worker['reloads'] == 0 and worker['pid'] not in old_pids:
            return True
    # the master's failed counter is cumulative: only a failure since ``before`` is this reload's
    if after['master']['failed'] > before['master']['failed']:
        return False
    return None


class MasterClient:
    """HAProxy master CLI (``-S master.sock``)."""

    def __init__(self, address, timeout=5.0):
        self.address = address
        self.timeout = timeout

    def show_proc(self):
        conn = CliConnection(self.address, self.timeout)
        try:
            return parse_show_proc(expect_header('show proc', conn.command('show proc'), '#<PID>'))
        finally:
            conn.close()

    def reload(self, timeout=None, poll=0.1):
        """Hitless reload; HAProxy 2.6 sends no status for ``reload``, so success is read back from ``show proc``:
        the master's reload count grows and a worker that was not there before is the current one."""
        timeout = self.timeout if timeout is None else timeout
        before = self.show_proc()
        conn = CliConnection(self.address, self.timeout)
        try:
            conn.command('reload', allow_eof=True)
        except HAProxyConnectionError:
            pass  # the master re-executes and drops the connection; the read-back below decides
        finally:
            conn.sock.close()
        deadline = time.monotonic() + timeout
        last_error = None
        after = None
        while True:
            try:
                after = self.show_proc()
                verdict = reload_succeeded(before, after)
                if verdict is True:
                    return {'before': before, 'after': after}
                if verdict is False:
                    raise HAProxyReloadError('HAProxy reload failed (the master\'s failed reloads went from %d to %d); the previous '
                                             'worker %s keeps running: check the configuration with haproxy -c'
                                             % (before['master']['failed'], after['master']['failed'],
                                                [w['pid'] for w in after['workers']]))
            except HAProxyConnectionError as exc:
                last_error = exc   # master socket briefly unavailable while the master re-executes
            if time.monotonic() >= deadline:
                raise HAProxyReloadError('HAProxy reload: no new worker within %ss (last show proc: %s; last error: %s)'
                                         % (timeout, after, last_error))
            time.sleep(poll)


def validate_config(path, haproxy_bin='haproxy', timeout=30):
    """``haproxy -c -f path``; raises ConfigInvalid with HAProxy's output when it refuses the file."""
    try:
        proc = subprocess.run([haproxy_bin, '-c', '-f', path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HAProxyError('cannot run %s -c: %s' % (haproxy_bin, exc))
    output = proc.stdout.decode('utf-8', 'replace')
    if proc.returncode != 0:
        raise ConfigInvalid(path, output)
    return output
