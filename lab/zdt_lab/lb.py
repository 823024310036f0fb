"""The sandbox HAProxy in front of two small Python backends, for the HAProxy integration tests (127.0.0.1 only)."""
import http.client
import os
import sys
import time

from ansible_collections.zdt.bluegreen.plugins.module_utils import haproxy_master as hm
from ansible_collections.zdt.bluegreen.plugins.module_utils import haproxy_runtime as hr

from zdt_lab.sandbox import free_port


class LB:
    """The sandbox HAProxy with three backends over two Python backends (blue: version 1, green: version 2)."""

    def __init__(self, sandbox):
        self.sb = sandbox
        self.hp = sandbox.haproxy
        self.port = sandbox.ports['lb']
        # the same ports for every test module of the session: a server-state file restores server *addresses*
        # too (HAProxy 2.6), so a state file from a run on other ports would point the servers at dead ports
        if not hasattr(sandbox, 'zdt_haproxy_test_ports'):
            sandbox.zdt_haproxy_test_ports = (free_port(), free_port(), free_port(), free_port())
        self.blue_port, self.green_port, self.dead_port, self.canary_port = sandbox.zdt_haproxy_test_ports
        self.backends = {
            'app': [('blue1', self.blue_port), ('green1', self.green_port)],
            'canary': [('blue1', self.blue_port), ('green1', self.green_port), ('green2', self.green_port)],
            'mixed': [('blue1', self.blue_port), ('green1', self.dead_port)],
        }
        extra = '\nfrontend canary_fe\n    bind 127.0.0.1:%d\n    default_backend canary\n' % self.canary_port
        self.config = self.hp.render_config(backends=self.backends, extra=extra)
        self.socket = self.hp.stats_socket
        self.procs = []

    def start(self):
        for name, port, version in (('hp-blue', self.blue_port, '1'), ('hp-green', self.green_port, '2')):
            proc = self.sb.process(name)
            proc.start([sys.executable, '-m', 'zdt_lab.http_backend', str(port), version], port=port)
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
            live = [s for s in servers.values() if s.name != 'green1' or backend != 'mixed']
            if all(s.passing for s in live):
                return
            if time.monotonic() > deadline:
                raise AssertionError('servers not up: %s' % servers)
            time.sleep(0.1)

    def get(self, path='/', close=True, port=None):
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
