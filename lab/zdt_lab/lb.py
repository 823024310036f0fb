"""The sandbox HAProxy in front of two small Python backends, for the HAProxy integration tests (127.0.0.1 only)."""
import http.client
import os
import sys
import time

from ansible_collections.zdt.bluegreen.plugins.module_utils import haproxy_master as hm
from ansible_collections.zdt.bluegreen.plugins.module_utils import haproxy_runtime as hr

from zdt_lab.sandbox import free_port


FAIL_EVERY = 20   # the flaky backend answers 500 to one request in this many


class LB:
    """The sandbox HAProxy over three Python backends (blue: version 1; green: version 2; flaky: version 2 answering
    500 to one request in FAIL_EVERY), with these backends:

    - ``app`` (the default frontend), ``canary`` and ``mixed`` (green1 on a closed port): every server ``check``;
    - ``parked`` and ``parked_nc`` (with and without health checks): blue1 serves, green1 and green2 are declared
      ``disabled`` in the configuration, the way many configurations park the idle color;
    - ``flaky``: blue1 and green1 on the flaky backend, for the error-rate gate.
    """

    def __init__(self, sandbox):
        self.sb = sandbox
        self.hp = sandbox.haproxy
        self.port = sandbox.ports['lb']
        # the same ports for every test module of the session: a server-state file restores server *addresses*
        # too (HAProxy 2.6), so a state file from a run on other ports would point the servers at dead ports
        if not hasattr(sandbox, 'zdt_haproxy_test_ports'):
            ports = []
            while len(ports) < 8:
                port = free_port()
                if port not in ports and port != self.port:
                    ports.append(port)
            sandbox.zdt_haproxy_test_ports = tuple(ports)
        (self.blue_port, self.green_port, self.dead_port, self.canary_port, self.parked_port, self.parked_nc_port,
         self.flaky_port, self.flaky_fe_port) = sandbox.zdt_haproxy_test_ports
        self.backends = {
            'app': [('blue1', self.blue_port), ('green1', self.green_port)],
            'canary': [('blue1', self.blue_port), ('green1', self.green_port), ('green2', self.green_port)],
            'mixed': [('blue1', self.blue_port), ('green1', self.dead_port)],
            'parked': [('blue1', self.blue_port), ('green1', self.green_port, 'check weight 100 disabled'),
                       ('green2', self.green_port, 'check weight 100 disabled')],
            'parked_nc': [('blue1', self.blue_port, 'weight 100'), ('green1', self.green_port, 'weight 100 disabled'),
                          ('green2', self.green_port, 'weight 100 disabled')],
            'flaky': [('blue1', self.blue_port), ('green1', self.flaky_port)],
        }
        # backend -> the port of the frontend that sends to it
        self.frontends = {'app': self.port, 'canary': self.canary_port, 'parked': self.parked_port,
                          'parked_nc': self.parked_nc_port, 'flaky': self.flaky_fe_port}
        extra = ''.join('\nfrontend %s_fe\n    bind 127.0.0.1:%d\n    default_backend %s\n' % (backend, port, backend)
                        for backend, port in self.frontends.items() if backend != 'app')
        self.config = self.hp.render_config(backends=self.backends, extra=extra)
        self.socket = self.hp.stats_socket
        self.procs = []

    def start(self):
        for name, port, version, fail_every in (('hp-blue', self.blue_port, '1', 0), ('hp-green', self.green_port, '2', 0),
                                                ('hp-flaky', self.flaky_port, '2', FAIL_EVERY)):
            proc = self.sb.process(name)
            proc.start([sys.executable, '-m', 'zdt_lab.http_backend', str(port), version, str(fail_every)], port=port)
            self.procs.append(proc)
        self.previous_config = None
        if self.hp.running:
            with open(self.hp.cfg_path, encoding='utf-8') as handle:
                self.previous_config = handle.read()
            self.hp.reload(config_text=self.config)
        else:
            if os.path.exists(self.hp.state_file):
                os.unlink(self.hp.state_file)   # a fresh start begins from the configuration, not a stale state
            self.hp.start(config_text=self.config)
        self.wait_all_up()

    def stop(self):
        if self.previous_config is not None:
            self.hp.reload(config_text=self.previous_config)
        else:
            self.hp.stop()
        for proc in self.procs:
            proc.stop()

    def reload_from_config(self):
        """A hitless reload without the server-state file: every server starts in the state its configuration line
        gives it (a ``disabled`` one in maintenance), as after a fresh start, and the backends are up again."""
        if os.path.exists(self.hp.state_file):
            os.unlink(self.hp.state_file)
        hm.MasterClient(self.hp.master_socket, timeout=5).reload(timeout=15)
        self.wait_all_up()

    def client(self):
        return hr.RuntimeClient(self.socket, timeout=5)

    def servers(self, backend='app'):
        with self.client() as client:
            return client.servers(backend)

    def states(self, backend='app'):
        return dict((n, s.as_dict()) for n, s in self.servers(backend).items())

    def reset(self, backend='app'):
        """Everything ready at weight 100 (the configuration's state)."""
        with self.client() as client:
            for name in client.servers(backend):
                client.set_server_weight(backend, name, 100)
                client.set_server_state(backend, name, 'ready')
        self.wait_all_up(backend)

    def wait_all_up(self, backend='app', timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            servers = self.servers(backend)
            live = [s for s in servers.values() if (s.name != 'green1' or backend != 'mixed') and s.admin_state != 'maint']
            if all(s.passing for s in live):
                return
            if time.monotonic() > deadline:
                raise AssertionError('servers not up: %s' % servers)
            time.sleep(0.1)

    def get(self, path='/', close=True, port=None, backend=None):
        """One request through the frontend of backend (or port; default the app frontend): (status, version)."""
        port = port or (self.frontends[backend] if backend else None)
        conn = http.client.HTTPConnection('127.0.0.1', port or self.port, timeout=30)
        try:
            conn.request('GET', path, headers={'Connection': 'close'} if close else {})
            resp = conn.getresponse()
            resp.read()
            return resp.status, resp.getheader('X-App-Version')
        finally:
            conn.close()

    def worker_pids(self):
        return [w['pid'] for w in hm.MasterClient(self.hp.master_socket, timeout=5).show_proc()['workers']]
