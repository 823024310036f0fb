# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client for the HAProxy runtime API (stats socket), the parsing of its replies and the server-state file.
No Ansible import. The master CLI (reload, show proc) and ``haproxy -c`` are in haproxy_master, which
talks over the same CliConnection.

One connection carries several commands in interactive ``prompt`` mode: every reply ends with the
prompt, so each reply is attributed to exactly one command and checked on its own.  The
alternative, ``cmd1;cmd2`` in one line, concatenates the replies with empty-line separators that
cannot be told apart from empty lines inside a reply (and from the empty reply that means success).

Every reply is checked against the shape its command must have (empty for ``set``/``shutdown``,
a known header for ``show``); anything else - ``No such backend.``, ``No such server.``,
``Permission denied``, ``Unknown command`` ... - raises :class:`HAProxyCommandError` carrying the
reply text.  Every socket operation has a timeout.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import csv
import io
import os
import re
import socket
import tempfile
import time

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError

# srv_admin_state bits (HAProxy 2.6 include/haproxy/server-t.h)
SRV_ADMF_FMAINT = 0x01   # forced maintenance (set server ... state maint; also set by ``disabled`` in the configuration)
SRV_ADMF_IMAINT = 0x02   # inherited maintenance (tracked server)
SRV_ADMF_CMAINT = 0x04   # the server is declared ``disabled`` in the configuration: a marker, NOT a maintenance
SRV_ADMF_FDRAIN = 0x08   # forced drain (set server ... state drain)
SRV_ADMF_IDRAIN = 0x10   # inherited drain
SRV_ADMF_RMAINT = 0x20   # maintenance because of a resolution failure
SRV_ADMF_HMAINT = 0x40   # the FQDN was changed at runtime: a marker, NOT a maintenance
# HAProxy's own SRV_ADMF_MAINT. ``disabled`` sets CMAINT | FMAINT (5); ``set server ... state ready`` clears FMAINT
# only, so a server that left configuration maintenance and serves reads 4, and 12 when drained (CMAINT | FDRAIN).
# Measured on HAProxy 2.6.12: every state whose bits hit this mask is the one ``show stat`` calls MAINT, and no other.
MAINT_MASK = SRV_ADMF_FMAINT | SRV_ADMF_IMAINT | SRV_ADMF_RMAINT
DRAIN_MASK = SRV_ADMF_FDRAIN | SRV_ADMF_IDRAIN

# srv_op_state values
SRV_ST_STOPPED = 0
SRV_ST_STARTING = 1
SRV_ST_RUNNING = 2
SRV_ST_STOPPING = 3

ADMIN_STATES = ('ready', 'drain', 'maint')
# per-server counters of ``show stat`` (HAProxy 2.6 column names) read for the error-rate gate: answers by status
# class, response errors (the server closed or timed out mid-response: HAProxy answered 502/504 itself and counted no
# hrsp_5xx for the server), connection errors (the last connection attempt failed: HAProxy answered 503),
# connection retries and redispatches (the client saw nothing), HTTP requests and sessions
SERVER_COUNTERS = ('hrsp_1xx', 'hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx', 'hrsp_5xx', 'hrsp_other', 'eresp', 'econ',
                   'wretr', 'wredis', 'req_tot', 'stot')
MAX_WEIGHT = 256
_PROMPT_RE = re.compile(r'(?:^|\n)([A-Za-z0-9_@!.:\[\]-]*> )$')
_NAME_RE = re.compile(r'^[A-Za-z0-9_.:-]+$')


class HAProxyError(ZdtError):
    """Base error of the runtime-API client."""


class HAProxyConnectionError(HAProxyError):
    """The socket could not be reached, or it closed or timed out mid-reply."""


class HAProxyCommandError(HAProxyError):
    """HAProxy answered a command with something other than success; ``reply`` is its text."""

    def __init__(self, command, reply):
        self.command = command
        self.reply = reply.strip()
        super(HAProxyCommandError, self).__init__('HAProxy refused "%s": %s' % (command, self.reply or '(empty reply)'))


def parse_address(address):
    """'/path', 'unix@/path' or 'ipv4@host:port' -> (family, sockaddr)."""
    if not address or not isinstance(address, str):
        raise HAProxyError('socket: expected a unix socket path or ipv4@host:port, got %r' % (address,))
    if address.startswith('ipv4@'):
        hostport = address[5:]
        host, sep, port = hostport.rpartition(':')
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise HAProxyError('socket: %r is not ipv4@host:port' % address)
        return socket.AF_INET, (host, int(port))
    if address.startswith('unix@'):
        address = address[5:]
    if '@' in address.split('/', 1)[0] and not address.startswith('/'):
        raise HAProxyError('socket: unsupported address %r (use a unix socket path or ipv4@host:port)' % address)
    return socket.AF_UNIX, address


def check_name(kind, name):
    """Backend and server names go into CLI lines: refuse anything that could split or inject a command."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise HAProxyError('%s name %r is not a valid HAProxy name' % (kind, name))
    return name


class CliConnection:
    """One CLI connection in prompt mode (the stats socket and the master socket speak the same protocol)."""

    def __init__(self, address, timeout):
        self.address = address
        self.timeout = float(timeout)
        family, sockaddr = parse_address(address)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        try:
            self.sock.connect(sockaddr)
        except (OSError, socket.timeout) as exc:
            self.sock.close()
            raise HAProxyConnectionError('cannot connect to HAProxy socket %s: %s' % (address, exc))
        self.buffer = ''
        self.prompt = None
        self._send('prompt')
        self._read_reply('prompt')

    def _send(self, line):
        try:
            self.sock.sendall(line.encode('utf-8') + b'\n')
        except (OSError, socket.timeout) as exc:
            raise HAProxyConnectionError('HAProxy socket %s: sending "%s" failed: %s' % (self.address, line, exc))

    def _read_reply(self, command, allow_eof=False):
        deadline = time.monotonic() + self.timeout
        data = self.buffer
        while True:
            match = _PROMPT_RE.search(data)
            if match and (self.prompt is None or match.group(1) == self.prompt):
                if self.prompt is None:
                    self.prompt = match.group(1)
                self.buffer = ''
                reply = data[:match.start()]
                # a reply is its text followed by one empty line, then the prompt
                return reply[:-1] if reply.endswith('\n') else reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HAProxyConnectionError('HAProxy socket %s: no complete reply to "%s" within %ss' % (self.address, command, self.timeout))
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise HAProxyConnectionError('HAProxy socket %s: no complete reply to "%s" within %ss' % (self.address, command, self.timeout))
            except OSError as exc:
                raise HAProxyConnectionError('HAProxy socket %s: reading the reply to "%s" failed: %s' % (self.address, command, exc))
            if not chunk:
                if allow_eof:
                    return None
                raise HAProxyConnectionError('HAProxy socket %s closed the connection during "%s"; partial reply: %s'
                                             % (self.address, command, data.strip()[:500]))
            data += chunk.decode('utf-8', 'replace')

    def command(self, line, allow_eof=False):
        self._send(line)
        return self._read_reply(line, allow_eof=allow_eof)

    def close(self):
        try:
            self.sock.sendall(b'quit\n')
        except (OSError, socket.timeout):
            pass
        self.sock.close()


def _expect_empty(command, reply):
    if reply.strip():
        raise HAProxyCommandError(command, reply)
    return reply


def expect_header(command, reply, header):
    if not reply.startswith(header):
        raise HAProxyCommandError(command, reply)
    return reply


def parse_stat_csv(text):
    """``show stat`` CSV -> list of dicts keyed by the header's column names (values are strings).

    Parsed with the csv module: HAProxy quotes a field that contains a comma or a quote (e.g. ``check_desc``,
    ``last_chk``: ``"Layer4 connection problem, info: ..."``), which a plain split would cut in two, shifting
    every later column."""
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows or not rows[0][0].startswith('# '):
        raise HAProxyError('show stat: unexpected reply: %s' % text.strip()[:300])
    columns = [rows[0][0][2:]] + rows[0][1:]
    result = []
    for values in rows[1:]:
        result.append(dict((col, values[i] if i < len(values) else '') for i, col in enumerate(columns) if col))
    return result


def admin_state_from_bits(bits):
    """srv_admin_state -> 'maint' | 'drain' | 'ready', the way HAProxy itself reads it (maintenance wins over drain).

    Maintenance is forced (0x01), inherited from a tracked server (0x02) or a resolution failure (0x20). The
    configuration bit 0x04 and the FQDN bit 0x40 alone never mean maint: a server declared ``disabled`` is in
    maintenance through 0x01, which HAProxy sets with it, and keeps 0x04 after it left maintenance."""
    bits = int(bits)
    if bits & MAINT_MASK:
        return 'maint'
    if bits & DRAIN_MASK:
        return 'drain'
    return 'ready'


def parse_servers_state(text):
    """``show servers state`` (format version 1) -> list of dicts; numbers as int, plus ``admin_state``."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != '1':
        raise HAProxyError('show servers state: unsupported reply (want format version 1): %s' % text.strip()[:300])
    columns = None
    rows = []
    for line in lines[1:]:
        if not line.strip():
            continue
        if line.startswith('#'):
            columns = line[1:].split()
            continue
        if columns is None:
            raise HAProxyError('show servers state: data before the header line: %s' % line)
        values = line.split()
        row = dict(zip(columns, values))
        for key in ('be_id', 'srv_id', 'srv_op_state', 'srv_admin_state', 'srv_uweight', 'srv_iweight',
                    'srv_check_status', 'srv_check_result', 'srv_check_health', 'srv_check_state'):
            if key in row:
                row[key] = int(row[key])
        row['admin_state'] = admin_state_from_bits(row['srv_admin_state'])
        rows.append(row)
    return rows


def to_int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class Server:
    """What the modules need to know about one server, merged from show servers state and show stat."""

    def __init__(self, backend, name, admin_bits, op_state, weight, iweight, check_health=0, check_enabled=False,
                 scur=0, qcur=0, status='', rise=0, fall=0, check_status=''):
        self.backend = backend
        self.name = name
        self.admin_bits = admin_bits
        self.admin_state = admin_state_from_bits(admin_bits)
        self.op_state = op_state
        self.weight = weight
        self.iweight = iweight
        self.check_health = check_health
        self.check_enabled = check_enabled
        self.scur = scur
        self.qcur = qcur
        self.status = status
        self.rise = rise
        self.fall = fall
        self.check_status = check_status

    @property
    def up(self):
        """Operationally up (HAProxy would send it traffic if it were ready)."""
        return self.op_state in (SRV_ST_RUNNING, SRV_ST_STARTING)

    @property
    def settled(self):
        """False while health is between the bounds (e.g. just out of maint, or a check failed once)."""
        if not self.check_enabled or self.admin_state == 'maint':
            return True
        if self.op_state == SRV_ST_STOPPED:
            return True
        return self.check_health >= self.rise + self.fall - 1

    @property
    def passing(self):
        """Up and passing its health checks (a server without checks counts as passing)."""
        if self.admin_state == 'maint' or not self.up:
            return False
        if not self.check_enabled:
            return True
        return self.check_health >= self.rise + self.fall - 1

    def as_dict(self):
        return {'admin_state': self.admin_state, 'weight': self.weight}

    def __repr__(self):
        return 'Server(%s/%s %s op=%s w=%s health=%s scur=%s qcur=%s)' % (
            self.backend, self.name, self.admin_state, self.op_state, self.weight, self.check_health, self.scur, self.qcur)


class RuntimeClient:
    """HAProxy stats socket (``level admin``) client; use as a context manager or call close()."""

    def __init__(self, address, timeout=5.0):
        self.address = address
        self.timeout = timeout
        self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def raw(self, line):
        """Send one command line and return its reply text (no success check)."""
        if '\n' in line or '\r' in line or ';' in line:
            raise HAProxyError('refusing to send a command containing a line break or ";": %r' % line)
        if self._conn is None:
            self._conn = CliConnection(self.address, self.timeout)
        try:
            return self._conn.command(line)
        except HAProxyConnectionError:
            self.close()
            raise

    # ---- reads
    def show_backends(self):
        reply = expect_header('show backend', self.raw('show backend'), '# name')
        return [line.strip() for line in reply.splitlines()[1:] if line.strip()]

    def show_info(self):
        reply = expect_header('show info', self.raw('show info'), 'Name: ')
        info = {}
        for line in reply.splitlines():
            key, sep, value = line.partition(':')
            if sep:
                info[key.strip()] = value.strip()
        return info

    def show_stat(self, backend=None):
        if backend is None:
            cmd = 'show stat'
        else:
            cmd = 'show stat %s -1 -1' % check_name('backend', backend)
        return parse_stat_csv(expect_header(cmd, self.raw(cmd), '# pxname'))

    def show_servers_state_text(self, backend=None):
        cmd = 'show servers state' if backend is None else 'show servers state %s' % check_name('backend', backend)
        reply = self.raw(cmd)
        if not reply.startswith('1\n'):
            raise HAProxyCommandError(cmd, reply)
        return reply if reply.endswith('\n') else reply + '\n'

    def show_servers_state(self, backend=None):
        return parse_servers_state(self.show_servers_state_text(backend))

    def servers(self, backend):
        """{server name: Server} for one backend; HAProxyCommandError('Can't find backend.') when it is missing."""
        check_name('backend', backend)
        state = self.show_servers_state(backend)
        stats = dict((row.get('svname'), row) for row in self.show_stat(backend)
                     if row.get('pxname') == backend and row.get('svname') not in ('FRONTEND', 'BACKEND'))
        result = {}
        for row in state:
            stat = stats.get(row['srv_name'], {})
            # srv_check_state bit 0x04 = CHK_ST_ENABLED
            check_enabled = bool(row.get('srv_check_state', 0) & 0x04)
            result[row['srv_name']] = Server(
                backend, row['srv_name'], row['srv_admin_state'], row['srv_op_state'], row['srv_uweight'], row['srv_iweight'],
                check_health=row.get('srv_check_health', 0), check_enabled=check_enabled,
                scur=to_int(stat.get('scur')), qcur=to_int(stat.get('qcur')), status=stat.get('status', ''),
                rise=to_int(stat.get('check_rise')), fall=to_int(stat.get('check_fall')), check_status=stat.get('check_status', ''))
        return result

    def server_counters(self, backend, names=None):
        """{server: {counter: int}} of SERVER_COUNTERS from ``show stat`` for the given servers of a backend (all its
        servers when names is None), plus ``mode`` (http or tcp; HAProxy leaves the hrsp_* cells empty in TCP mode,
        read as 0). HAProxyCommandError naming the missing servers; HAProxyError when a counter column is absent."""
        rows = [row for row in self.show_stat(backend)
                if row.get('pxname') == backend and row.get('svname') not in ('FRONTEND', 'BACKEND')]
        if rows:
            absent = [c for c in SERVER_COUNTERS if c not in rows[0]]
            if absent:
                raise HAProxyError('show stat %s: no column %s (HAProxy 2.6 or later is needed)' % (backend, ', '.join(absent)))
        by_name = dict((row['svname'], row) for row in rows)
        if names is None:
            names = [row['svname'] for row in rows]
        missing = [n for n in names if n not in by_name]
        if missing:
            raise HAProxyCommandError('show stat %s -1 -1' % backend,
                                      'No such server: %s (the backend has: %s)' % (', '.join(missing), ', '.join(sorted(by_name))))
        counters = {}
        for name in names:
            row = by_name[name]
            counters[name] = dict((c, to_int(row.get(c))) for c in SERVER_COUNTERS)
            counters[name]['mode'] = row.get('mode', '')
        return counters

    def session_counts(self, backend, names):
        """{server: (scur, qcur)} from show stat for the given servers."""
        rows = dict((row.get('svname'), row) for row in self.show_stat(backend) if row.get('pxname') == backend)
        counts = {}
        for name in names:
            if name not in rows:
                raise HAProxyCommandError('show stat %s -1 -1' % backend, 'No such server: %s' % name)
            counts[name] = (to_int(rows[name].get('scur')), to_int(rows[name].get('qcur')))
        return counts

    # ---- writes
    def _server_cmd(self, backend, server, rest):
        cmd = 'set server %s/%s %s' % (check_name('backend', backend), check_name('server', server), rest)
        return _expect_empty(cmd, self.raw(cmd))

    def set_server_state(self, backend, server, state):
        if state not in ADMIN_STATES:
            raise HAProxyError('admin state must be one of %s, got %r' % (', '.join(ADMIN_STATES), state))
        self._server_cmd(backend, server, 'state %s' % state)

    def set_server_weight(self, backend, server, weight):
        weight = int(weight)
        if not 0 <= weight <= MAX_WEIGHT:
            raise HAProxyError('weight must be 0..%d, got %d' % (MAX_WEIGHT, weight))
        self._server_cmd(backend, server, 'weight %d' % weight)

    def shutdown_sessions(self, backend, server):
        cmd = 'shutdown sessions server %s/%s' % (check_name('backend', backend), check_name('server', server))
        _expect_empty(cmd, self.raw(cmd))


def write_state_file(client, path):
    """Dump ``show servers state`` (all backends) atomically to path: the format load-server-state-from-file reads."""
    text = client.show_servers_state_text()
    parse_servers_state(text)  # refuse to persist something HAProxy could not load
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
        with os.fdopen(fd, 'w') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise HAProxyError('cannot write the server-state file %s: %s' % (path, exc))
    return text
