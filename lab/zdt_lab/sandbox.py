"""Local sandbox stack shared by the tests, the molecule scenarios and the demo.

Private MariaDB (own datadir, port, socket) and optionally a MariaDB replica of it,
HAProxy in master-worker mode and application processes, each started and stopped by
a pid file under one state directory.  A pid file records the process start time as well as the pid, so a
stale file left by a crashed run is never mistaken for a live service even
when the pid has been reused.  Ports are chosen in one place (``PortPlan``),
persisted per state directory and checked free before a service starts.  The
system's MariaDB and HAProxy services are never touched.
"""

import argparse
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time

# The collection's own HAProxy runtime client does the reloads and state dumps (one place for them).
from ansible_collections.zdt.bluegreen.plugins.module_utils import haproxy_master, haproxy_runtime

from zdt_lab import REPO_ROOT
# Pid files and the process start-time check are the collection's supervisor's: one implementation of them.
from zdt_lab.supervisor import zdt_supervise

DEFAULT_ROOT = os.environ.get('ZDT_SANDBOX_DIR', os.path.join(REPO_ROOT, '.sandbox'))

# The seed's ports; used when free, others otherwise.  ZDT_PORT_<NAME> overrides one.
PREFERRED_PORTS = {'mariadb': 13306, 'lb': 8000, 'blue': 8001, 'green': 8002}

APP_USER = 'zdt'


class SandboxError(Exception):
    """A sandbox service could not be started or stopped."""


class PortInUse(SandboxError):
    """The port planned for a service is held by a process that is not ours."""


# ---------------------------------------------------------------- processes

def pid_alive(pid):
    """True while any thread of pid still runs (a zombie whose threads are all gone is not alive)."""
    return zdt_supervise.start_time_of(pid) is not None


def port_is_free(port, host='127.0.0.1'):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_accepts(port, host='127.0.0.1', timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port():
    """A free port below the kernel's ephemeral range, which outgoing connections may take at any moment."""
    with open('/proc/sys/net/ipv4/ip_local_port_range', encoding='ascii') as handle:
        ephemeral_low = int(handle.read().split()[0])
    rng = random.SystemRandom()
    for _attempt in range(200):
        port = rng.randrange(15000, max(ephemeral_low, 15001))
        if port_is_free(port):
            return port
    raise SandboxError('no free port found between 15000 and %d' % ephemeral_low)


class PidFile:
    """A pid file holding {pid, start_time, argv}; alive only if both still match (the supervisor's records)."""

    def __init__(self, path):
        self.path = path

    def write(self, pid, argv):
        zdt_supervise.write_record(self.path, {'pid': pid, 'start_time': zdt_supervise.start_time_of(pid), 'argv': list(argv)})

    def live_record(self):
        """The record while its process runs; None when it is gone or the pid was reused by another process."""
        return zdt_supervise.live_record(self.path)

    def live_pid(self):
        record = self.live_record()
        return record['pid'] if record else None

    def is_stale(self):
        return os.path.exists(self.path) and self.live_pid() is None

    def remove(self):
        zdt_supervise.remove(self.path)


def _reap(pid):
    """Collect the exit status of a child of this process (the tests start the services themselves)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


class Process:
    """One supervised process: started detached, tracked by its pid file."""

    def __init__(self, sandbox, name):
        self.sandbox = sandbox
        self.name = name
        self.pidfile = PidFile(os.path.join(sandbox.run_dir, name + '.pid'))
        self.log_path = os.path.join(sandbox.log_dir, name + '.log')

    @property
    def pid(self):
        return self.pidfile.live_pid()

    @property
    def running(self):
        return self.pid is not None

    def clean_stale(self):
        if self.pidfile.is_stale():
            self.pidfile.remove()
            return True
        return False

    def start(self, argv, env=None, cwd=None, port=None, timeout=15, ready=None):
        """Start argv unless already running; wait until port accepts (or ready() is true)."""
        self.clean_stale()
        if self.running:
            return self.pid
        if port is not None and not port_is_free(port):
            raise PortInUse('%s: port %d is in use by a process that is not this sandbox\'s' % (self.name, port))
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(self.log_path, 'ab') as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=cwd, env=full_env, start_new_session=True)
        self.pidfile.write(proc.pid, argv)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pidfile.remove()
                raise SandboxError('%s exited with %s during start; see %s:\n%s'
                                   % (self.name, proc.returncode, self.log_path, self.tail_log()))
            if (port is None or port_accepts(port)) and (ready is None or ready()):
                return proc.pid
            time.sleep(0.05)
        self.stop()
        raise SandboxError('%s did not become ready within %ss; see %s:\n%s' % (self.name, timeout, self.log_path, self.tail_log()))

    def stop(self, timeout=10):
        """SIGTERM, wait up to timeout, then SIGKILL (the supervisor's stop)."""
        record = self.pidfile.live_record()
        if record is not None:
            try:
                zdt_supervise.terminate(record, timeout)
            except RuntimeError as exc:
                raise SandboxError('%s (pid %d) did not stop: %s' % (self.name, record['pid'], exc))
            _reap(record['pid'])
        self.pidfile.remove()

    def tail_log(self, lines=20):
        try:
            with open(self.log_path, 'r', encoding='utf-8', errors='replace') as handle:
                return ''.join(handle.readlines()[-lines:])
        except OSError:
            return ''


# ---------------------------------------------------------------- ports

class PortPlan:
    """The one place ports come from: preferred when free, otherwise any free port; persisted.

    The seed's services get their ports when the plan is first made; a service started later (a replica)
    gets a free port the first time it asks (:meth:`port`), kept in the same file."""

    def __init__(self, path, preferred=None):
        self.path = path
        self.preferred = dict(PREFERRED_PORTS if preferred is None else preferred)
        for name in list(PREFERRED_PORTS):
            override = os.environ.get('ZDT_PORT_' + name.upper())
            if override:
                self.preferred[name] = int(override)

    def load(self):
        try:
            with open(self.path, 'r', encoding='utf-8') as handle:
                return json.load(handle)
        except (OSError, ValueError):
            pass
        ports = {}
        for name in PREFERRED_PORTS:
            want = self.preferred.get(name)
            port = want if want and port_is_free(want) else free_port()
            while port in ports.values():
                port = free_port()
            ports[name] = port
        self._save(ports)
        return ports

    def _save(self, ports):
        tmp = self.path + '.new'
        with open(tmp, 'w', encoding='utf-8') as handle:
            json.dump(ports, handle, indent=1)
        os.replace(tmp, self.path)

    def port(self, name):
        """The port of ``name``: its planned one, else a free port now added to the plan."""
        ports = self.load()
        if name not in ports:
            port = free_port()
            while port in ports.values():
                port = free_port()
            ports[name] = port
            self._save(ports)
        return ports[name]


# ---------------------------------------------------------------- MariaDB

class MariaDB:
    """The sandbox's MariaDB primary (name ``mariadb``); :class:`Replica` is a second server replicating from it.

    Server settings beyond the sandbox's defaults are kept in ``<dir>/settings.json`` (:meth:`configure`), so a
    restart keeps them: ``log_bin`` (binary logging, ROW format, needed by a replica) and ``options`` (more
    ``--name=value`` server options, for example ``innodb-autoinc-lock-mode``).
    """
    host = '127.0.0.1'
    # Where the server listens; a namespace host (multihost scenario) listens on all its addresses.
    bind_address = os.environ.get('ZDT_DB_BIND_ADDRESS', '127.0.0.1')
    name = 'mariadb'
    server_id = 1

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.dir = os.path.join(sandbox.root, self.name)
        self.datadir = os.path.join(self.dir, 'data')
        # Temporary tables and sort files in a directory of this instance, not the machine's /tmp: an instance
        # initialised beside another lost a temporary table file there mid-bootstrap (ERROR 1051 on mysql.tmp_user_sys).
        self.tmpdir = os.path.join(self.dir, 'tmp')
        self.socket = os.path.join(self.dir, 'mysqld.sock')
        self.marker = os.path.join(self.dir, 'initialized')
        self.settings_path = os.path.join(self.dir, 'settings.json')
        self.process = sandbox.process(self.name)

    @property
    def port(self):
        return self.sandbox.port(self.name)

    @property
    def pid(self):
        return self.process.pid

    @property
    def running(self):
        return self.process.running

    @property
    def app_password(self):
        return self.sandbox.secret('mariadb_app_password')

    # ------------------------------------------------------------ settings

    def settings(self):
        try:
            with open(self.settings_path, 'r', encoding='utf-8') as handle:
                values = json.load(handle)
        except (OSError, ValueError):
            values = {}
        values.setdefault('log_bin', False)
        values.setdefault('options', {})
        # whether the binary log holds every change since the datadir was created (a replica can start from it)
        values.setdefault('binlog_complete', False)
        return values

    def configure(self, log_bin=None, options=None):
        """Change the server settings used from the next start on (a running server must be restarted)."""
        values = self.settings()
        if log_bin is not None:
            values['log_bin'] = bool(log_bin)
            if not log_bin:
                values['binlog_complete'] = False
        if options is not None:
            values['options'] = dict(options)
        self._write_settings(values)
        return values

    def _write_settings(self, values):
        os.makedirs(self.dir, exist_ok=True)
        with open(self.settings_path, 'w', encoding='utf-8') as handle:
            json.dump(values, handle, indent=1)

    def _initialize(self):
        if os.path.isdir(self.datadir) and not os.path.exists(self.marker):
            shutil.rmtree(self.datadir)  # leftover of a crashed initialisation
        if os.path.exists(self.marker):
            return
        os.makedirs(self.datadir, exist_ok=True)
        os.makedirs(self.tmpdir, exist_ok=True)
        result = subprocess.run(['mariadb-install-db', '--no-defaults', '--user=root', '--datadir=' + self.datadir,
                                 '--tmpdir=' + self.tmpdir, '--auth-root-authentication-method=socket', '--skip-test-db'],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            raise SandboxError('mariadb-install-db failed:\n' + result.stdout.decode(errors='replace')[-2000:])
        self._first_start = True
        values = self.settings()
        if values['log_bin']:
            # the binary log starts with the first server start: it holds everything a replica needs
            values['binlog_complete'] = True
            self._write_settings(values)

    def argv(self):
        settings = self.settings()
        os.makedirs(self.tmpdir, exist_ok=True)   # a sandbox initialised before it had one
        argv = ['mariadbd', '--no-defaults', '--user=root', '--datadir=' + self.datadir, '--tmpdir=' + self.tmpdir,
                '--socket=' + self.socket, '--port=%d' % self.port, '--bind-address=' + self.bind_address,
                '--pid-file=' + os.path.join(self.dir, 'mariadbd.pid'), '--skip-name-resolve',
                '--server-id=%d' % self.server_id, '--innodb-buffer-pool-size=512M', '--innodb-log-file-size=256M',
                '--innodb-flush-log-at-trx-commit=2', '--max-connections=500', '--character-set-server=utf8mb4',
                '--collation-server=utf8mb4_general_ci', '--sql-mode=STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,'
                'NO_ENGINE_SUBSTITUTION', '--log-error=' + os.path.join(self.sandbox.log_dir, self.name + '-error.log')]
        if settings['log_bin']:
            argv += ['--log-bin=' + os.path.join(self.datadir, 'binlog'), '--binlog-format=ROW']
        else:
            argv.append('--skip-log-bin')
        argv += ['--%s=%s' % (key, value) for key, value in sorted(settings['options'].items())]
        return argv

    def _ready(self):
        try:
            self.root_connect().close()
            return True
        except Exception:  # pylint: disable=broad-except
            return False

    def start(self):
        self.process.clean_stale()
        if self.running:
            return
        os.makedirs(self.dir, exist_ok=True)
        if os.path.exists(self.socket):
            os.unlink(self.socket)  # left by a crashed server
        self._first_start = False
        self._initialize()
        self.process.start(self.argv(), port=self.port, timeout=60, ready=self._ready)
        if self._first_start or not self._app_user_exists():
            self._create_app_user()
            with open(self.marker, 'w', encoding='utf-8') as handle:
                handle.write('ok\n')

    def restart(self):
        """Stop and start again (new settings take effect)."""
        self.stop()
        self.start()

    def _app_user_exists(self):
        with self.root_connect() as conn, conn.cursor() as cur:
            cur.execute('SELECT COUNT(*) FROM mysql.user WHERE user = %s', (APP_USER,))
            return cur.fetchone()[0] > 0

    def _create_app_user(self):
        with self.root_connect() as conn, conn.cursor() as cur:
            for host in ('localhost', '%'):
                cur.execute('CREATE OR REPLACE USER %s@%s IDENTIFIED BY %s', (APP_USER, host, self.app_password))

    def stop(self):
        self.process.stop(timeout=60)

    def root_params(self):
        return {'login_unix_socket': self.socket, 'login_user': 'root'}

    def app_params(self):
        return {'login_host': self.host, 'login_port': self.port, 'login_user': APP_USER,
                'login_password': self.app_password}

    def root_connect(self, database=None):
        import pymysql  # pylint: disable=import-outside-toplevel
        return pymysql.connect(unix_socket=self.socket, user='root', database=database, autocommit=True,
                               connect_timeout=5, charset='utf8mb4', ssl_disabled=True)

    def app_connect(self, database=None):
        import pymysql  # pylint: disable=import-outside-toplevel
        return pymysql.connect(host=self.host, port=self.port, user=APP_USER, password=self.app_password,
                               database=database, autocommit=True, connect_timeout=5, charset='utf8mb4',
                               ssl_disabled=True)

    def create_database(self, name):
        """Create (or recreate) a database and grant the application account all on it."""
        with self.root_connect() as conn, conn.cursor() as cur:
            quoted = '`%s`' % name.replace('`', '``')
            cur.execute('DROP DATABASE IF EXISTS ' + quoted)
            cur.execute('CREATE DATABASE ' + quoted)
            for host in ('localhost', '%'):
                cur.execute('GRANT ALL PRIVILEGES ON %s.* TO %%s@%%s' % quoted, (APP_USER, host))

    def gtid_position(self):
        """The primary's GTID position after its last binary-logged transaction."""
        with self.root_connect() as conn, conn.cursor() as cur:
            cur.execute('SELECT @@GLOBAL.gtid_binlog_pos')
            return cur.fetchone()[0]


REPL_USER = 'zdt_repl'


class Replica(MariaDB):
    """A MariaDB replica of the sandbox primary: its own datadir, port and socket, replication over loopback with
    GTID (``MASTER_USE_GTID=slave_pos``), read-only for every account without SUPER.

    The replica replays the primary's binary log from its beginning, so the primary must have had binary logging
    from its first start (``sandbox.mariadb.configure(log_bin=True)`` before it is first started).  It is stopped
    by pid like every sandbox process; :meth:`stop_sql_thread` and :meth:`start_sql_thread` make it lag on purpose.
    """
    name = 'replica'
    server_id = 2

    def __init__(self, sandbox, primary):
        super().__init__(sandbox)
        self.primary = primary

    def argv(self):
        return super().argv() + ['--read-only=1', '--relay-log=' + os.path.join(self.datadir, 'relay')]

    def settings(self):
        values = super().settings()
        values['log_bin'] = False
        return values

    def start(self):
        self.process.clean_stale()
        if self.running:
            return
        primary = self.primary.settings()
        if not (primary['log_bin'] and primary['binlog_complete']):
            raise SandboxError('the replica replays the primary\'s binary log from its start: configure the primary with '
                               'log_bin=True before its datadir is first created (a fresh sandbox root)')
        if not self.primary.running:
            raise SandboxError('start the primary (mariadb) before its replica')
        fresh = not os.path.exists(self.marker)
        super().start()
        if fresh:
            password = self.sandbox.secret('replication_password')
            with self.primary.root_connect() as conn, conn.cursor() as cur:
                cur.execute('CREATE OR REPLACE USER %s@%s IDENTIFIED BY %s', (REPL_USER, self.primary.host, password))
                cur.execute('GRANT REPLICATION SLAVE ON *.* TO %s@%s', (REPL_USER, self.primary.host))
            with self.root_connect() as conn, conn.cursor() as cur:
                cur.execute("SET GLOBAL gtid_slave_pos = ''")
                cur.execute('CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, MASTER_PASSWORD = %s, '
                            'MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1',
                            (self.primary.host, self.primary.port, REPL_USER, password))
                cur.execute('START SLAVE')
        self.wait_caught_up(timeout=60)

    def status(self):
        """``SHOW SLAVE STATUS`` as a dict (empty when replication is not set up)."""
        import pymysql  # pylint: disable=import-outside-toplevel
        with self.root_connect() as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute('SHOW SLAVE STATUS')
            return cur.fetchone() or {}

    def wait_caught_up(self, timeout=60):
        """Wait until the replica has applied everything the primary has binary-logged so far."""
        position = self.primary.gtid_position()
        with self.root_connect() as conn, conn.cursor() as cur:
            cur.execute('SELECT MASTER_GTID_WAIT(%s, %s)', (position, timeout))
            if cur.fetchone()[0] != 0:
                status = self.status()
                raise SandboxError('the replica did not reach the primary\'s position %s within %ss (IO %s, SQL %s, last error: %s)'
                                   % (position, timeout, status.get('Slave_IO_Running'), status.get('Slave_SQL_Running'),
                                      status.get('Last_Error') or status.get('Last_IO_Error')))

    def stop_sql_thread(self):
        with self.root_connect() as conn, conn.cursor() as cur:
            cur.execute('STOP SLAVE SQL_THREAD')

    def start_sql_thread(self):
        with self.root_connect() as conn, conn.cursor() as cur:
            cur.execute('START SLAVE SQL_THREAD')


# ---------------------------------------------------------------- HAProxy

HAPROXY_TEMPLATE = """\
global
    master-worker
    pidfile {pidfile}
    stats socket {stats_socket} mode 600 level admin expose-fd listeners
    stats timeout 30s
    server-state-file {state_file}
    maxconn 4096

defaults
    mode http
    log global
    option idle-close-on-response
    option http-keep-alive
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    load-server-state-from-file global
    default-server inter 500ms fall 2 rise 1

frontend web
    bind 127.0.0.1:{frontend_port}
    default_backend {default_backend}
{backends}{extra}"""


class HAProxy:

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.dir = os.path.join(sandbox.root, 'haproxy')
        self.cfg_path = os.path.join(self.dir, 'haproxy.cfg')
        self.stats_socket = os.path.join(self.dir, 'admin.sock')
        self.master_socket = os.path.join(self.dir, 'master.sock')
        self.state_file = os.path.join(self.dir, 'server-state')
        self.pidfile_path = os.path.join(self.dir, 'haproxy.pid')
        self.process = sandbox.process('haproxy')
        os.makedirs(self.dir, exist_ok=True)

    @property
    def pid(self):
        return self.process.pid

    @property
    def running(self):
        return self.process.running

    @property
    def frontend_port(self):
        return self.sandbox.ports['lb']

    def render_config(self, backends=None, frontend_port=None, extra=''):
        """HAProxy configuration with the settings the collection relies on.

        backends: {name: [(server, port), ...]}; the first backend is the default one. A server given as
        (server, port, keywords) gets those keywords instead of ``check weight 100`` (e.g. ``weight 100 disabled``).
        """
        if backends is None:
            ports = self.sandbox.ports
            backends = {'app': [('blue1', ports['blue']), ('green1', ports['green'])]}
        parts = []
        for name, servers in backends.items():
            parts.append('\nbackend %s\n    balance roundrobin\n    option httpchk GET /health\n'
                         '    http-check expect status 200\n' % name)
            for server in servers:
                keywords = server[2] if len(server) > 2 else 'check weight 100'
                parts.append('    server %s 127.0.0.1:%d %s\n' % (server[0], server[1], keywords))
        return HAPROXY_TEMPLATE.format(pidfile=self.pidfile_path, stats_socket=self.stats_socket, state_file=self.state_file,
                                       frontend_port=frontend_port or self.frontend_port, default_backend=next(iter(backends)),
                                       backends=''.join(parts), extra=extra)

    def check_config(self, path=None):
        try:
            haproxy_master.validate_config(path or self.cfg_path)
        except haproxy_runtime.HAProxyError as exc:
            raise SandboxError(str(exc))

    def write_config(self, config_text):
        tmp = self.cfg_path + '.new'
        with open(tmp, 'w', encoding='utf-8') as handle:
            handle.write(config_text)
        self.check_config(tmp)
        os.replace(tmp, self.cfg_path)

    def start(self, config_text=None):
        self.process.clean_stale()
        if self.running:
            return
        if config_text is not None or not os.path.exists(self.cfg_path):
            self.write_config(config_text if config_text is not None else self.render_config())
        for path in (self.stats_socket, self.master_socket):
            if os.path.exists(path):
                os.unlink(path)  # left by a crashed run; a live one would hold our pid file
        argv = ['haproxy', '-W', '-S', self.master_socket + ',mode,600', '-f', self.cfg_path]
        self.process.start(argv, port=self.frontend_port, timeout=15, ready=self._ready)

    def _ready(self):
        """Both the worker's admin socket and the master socket answer."""
        try:
            with haproxy_runtime.RuntimeClient(self.stats_socket, timeout=1) as client:
                client.show_info()
            haproxy_master.MasterClient(self.master_socket, timeout=1).show_proc()
        except haproxy_runtime.HAProxyError:
            return False
        return True

    def admin_command(self, command, timeout=5):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(self.stats_socket)
            sock.sendall(command.encode() + b'\n')
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b''.join(chunks).decode(errors='replace')

    def worker_pids(self):
        return [worker['pid'] for worker in haproxy_master.MasterClient(self.master_socket).show_proc()['workers']]

    def reload(self, config_text=None, timeout=15):
        """Hitless reload through the master socket; the state is dumped first so it survives."""
        if config_text is not None:
            self.write_config(config_text)
        else:
            self.check_config()
        with haproxy_runtime.RuntimeClient(self.stats_socket) as client:
            haproxy_runtime.write_state_file(client, self.state_file)
        try:
            result = haproxy_master.MasterClient(self.master_socket).reload(timeout=timeout)
        except haproxy_runtime.HAProxyError as exc:
            raise SandboxError(str(exc))
        return result['after']['workers'][0]['pid']

    def stop(self):
        self.process.stop(timeout=15)


# ---------------------------------------------------------------- the stack

class Sandbox:

    def __init__(self, root=None, preferred_ports=None):
        self.root = os.path.abspath(root or DEFAULT_ROOT)
        self.run_dir = os.path.join(self.root, 'run')
        self.log_dir = os.path.join(self.root, 'log')
        for path in (self.root, self.run_dir, self.log_dir):
            os.makedirs(path, exist_ok=True)
        os.chmod(self.root, 0o700)
        self._ports = PortPlan(os.path.join(self.root, 'ports.json'), preferred_ports)
        self.mariadb = MariaDB(self)
        self.replica = Replica(self, self.mariadb)
        self.haproxy = HAProxy(self)

    @property
    def ports(self):
        return self._ports.load()

    def port(self, name):
        return self._ports.port(name)

    def process(self, name):
        return Process(self, name)

    def secret(self, name):
        path = os.path.join(self.root, 'secrets.json')
        try:
            with open(path, 'r', encoding='utf-8') as handle:
                values = json.load(handle)
        except (OSError, ValueError):
            values = {}
        if name not in values:
            values[name] = secrets.token_urlsafe(18)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, 'w', encoding='utf-8') as handle:
                json.dump(values, handle)
        return values[name]

    def processes(self):
        names = sorted(f[:-4] for f in os.listdir(self.run_dir) if f.endswith('.pid'))
        return [self.process(name) for name in names]

    def stop_all(self):
        """Stop every process this sandbox started: applications first, the database last."""
        errors = []
        order = sorted(self.processes(), key=lambda p: {'haproxy': 1, 'replica': 2, 'mariadb': 3}.get(p.name, 0))
        for proc in order:
            try:
                proc.stop(timeout=60 if proc.name == 'mariadb' else 10)
            except SandboxError as exc:
                errors.append(str(exc))
        if errors:
            raise SandboxError('; '.join(errors))

    def status(self):
        return {p.name: {'pid': p.pid, 'stale': p.pidfile.is_stale()} for p in self.processes()}

    def env(self):
        """Shell-style variables describing the stack (for the Makefile, molecule and the demo)."""
        ports = self.ports
        values = {'ZDT_SANDBOX_DIR': self.root, 'ZDT_DB_HOST': self.mariadb.host, 'ZDT_DB_PORT': ports['mariadb'],
                  'ZDT_DB_SOCKET': self.mariadb.socket, 'ZDT_DB_USER': APP_USER,
                  'ZDT_LB_PORT': ports['lb'], 'ZDT_BLUE_PORT': ports['blue'], 'ZDT_GREEN_PORT': ports['green'],
                  'ZDT_HAPROXY_SOCKET': self.haproxy.stats_socket, 'ZDT_HAPROXY_MASTER_SOCKET': self.haproxy.master_socket,
                  'ZDT_HAPROXY_STATE_FILE': self.haproxy.state_file}
        if 'replica' in ports:
            values.update(ZDT_REPLICA_PORT=ports['replica'], ZDT_REPLICA_SOCKET=self.replica.socket)
        return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--root', default=None, help='state directory (default: %s)' % DEFAULT_ROOT)
    parser.add_argument('--any-ports', action='store_true', help='pick free ports instead of the seed\'s 8000-8002')
    parser.add_argument('--log-bin', action='store_true',
                        help='start: binary logging on the primary from its first start (needed by a replica)')
    parser.add_argument('action', choices=['start', 'stop', 'status', 'env', 'ports'])
    parser.add_argument('services', nargs='*', default=[], help='mariadb, replica, haproxy (start: default mariadb)')
    args = parser.parse_args(argv)
    sandbox = Sandbox(args.root, preferred_ports={} if args.any_ports else None)
    if args.action == 'start' and (args.log_bin or 'replica' in args.services):
        sandbox.mariadb.configure(log_bin=True)
    if args.action == 'start':
        for service in args.services or ['mariadb']:
            getattr(sandbox, service).start()
            print('%s running, pid %s' % (service, getattr(sandbox, service).pid))
    elif args.action == 'stop':
        if args.services:
            for service in args.services:
                getattr(sandbox, service).stop()
        else:
            sandbox.stop_all()
    elif args.action == 'status':
        print(json.dumps(sandbox.status(), indent=1))
    elif args.action == 'ports':
        print(json.dumps(sandbox.ports, indent=1))
    else:
        for key, value in sandbox.env().items():
            print('%s=%s' % (key, value))
    return 0


if __name__ == '__main__':
    sys.exit(main())
