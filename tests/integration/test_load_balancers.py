"""Two real HAProxy instances switched in step by the roles, one of them on its user's own haproxy.cfg.

lb1 runs the load_balancer role's generated configuration; lb2 runs a user-style configuration (logging, an extra
frontend and backend, the idle color's server ``disabled``, no admin socket and no server-state file of its own:
the role adds those in its separate file). In order, on one pair:

- own mode refuses a configuration that lacks a server, naming the line to add, before anything starts;
- both start (and a second run changes nothing), blue takes the traffic on both;
- traffic_switch moves both to green in steps under load from clients of both: every step read back and equal;
- back to blue, lb2's admin socket made unusable after the first step: the second step fails on lb2, lb1 is put back
  to the first step, lb2 is named as not put back; with the socket back, a rerun puts both in step;
- clients of either load balancer saw no failed request through all of it.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import yaml

from ansible_collections.zdt.bluegreen.plugins.module_utils import haproxy_runtime as hr
from zdt_lab.http_backend import LoadGenerator
from zdt_lab.sandbox import free_port
from zdt_lab.supervisor import zdt_supervise

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
COLORS = {'blue': ['blue1'], 'green': ['green1']}

USER_CONFIG = '''\
# the user's own configuration: the role never writes it
global
    log stdout format raw local0
    maxconn 2000
    # a monitoring socket: reads only
    stats socket {monitor_socket} mode 600 level operator

defaults
    mode http
    log global
    option httplog
    option idle-close-on-response
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    load-server-state-from-file global
    default-server inter 300ms fall 2 rise 1

frontend www
    bind 127.0.0.1:{lb_port}
    default_backend app

frontend status
    bind 127.0.0.1:{status_port}
    http-request return status 200 content-type text/plain string ok

backend static
    server files 127.0.0.1:{blue_port} check

backend app
    balance roundrobin
    option httpchk GET /health
    server blue1 127.0.0.1:{blue_port} check
{green_line}'''


class Pair(object):
    """Two blue/green backends and the inventory of two load balancers on this machine."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix='zdt-lbs-')
        self.ports = dict(blue=free_port(), green=free_port(), lb1=free_port(), lb2=free_port(), status=free_port())
        self.procs = []
        self.own_config = os.path.join(self.tmp, 'lb2-etc', 'haproxy.cfg')
        self.inventory = os.path.join(self.tmp, 'inventory.yml')

    def dir(self, host, name):
        return os.path.join(self.tmp, host, name)

    def socket(self, host):
        return self.dir(host, 'admin.sock')

    def start_backends(self):
        for color, version in (('blue', '1'), ('green', '2')):
            log = open(os.path.join(self.tmp, color + '.log'), 'ab')
            self.procs.append(subprocess.Popen([sys.executable, '-m', 'zdt_lab.http_backend', str(self.ports[color]), version],
                                               stdout=log, stderr=subprocess.STDOUT))
            log.close()

    def write_own_config(self, with_green=True):
        os.makedirs(os.path.dirname(self.own_config), exist_ok=True)
        green = '    server green1 127.0.0.1:%d check disabled\n' % self.ports['green'] if with_green else ''
        with open(self.own_config, 'w', encoding='utf-8') as handle:
            handle.write(USER_CONFIG.format(lb_port=self.ports['lb2'], status_port=self.ports['status'],
                                            monitor_socket=self.dir('lb2', 'monitor.sock'),
                                            blue_port=self.ports['blue'], green_line=green))

    def write_inventory(self):
        servers = {'blue': [{'name': 'blue1', 'address': '127.0.0.1', 'port': self.ports['blue']}],
                   'green': [{'name': 'green1', 'address': '127.0.0.1', 'port': self.ports['green']}]}
        hosts = {}
        for host in ('lb1', 'lb2'):
            hosts[host] = {
                'load_balancer_port': self.ports[host],
                'load_balancer_config_path': self.dir(host, 'haproxy.cfg'),
                'load_balancer_admin_socket': self.socket(host),
                'load_balancer_master_socket': self.dir(host, 'master.sock'),
                'load_balancer_state_file': self.dir(host, 'server-state'),
                'load_balancer_pid_file': self.dir(host, 'haproxy.pid'),
                'load_balancer_run_dir': self.dir(host, 'run'),
                'load_balancer_state_dir': self.dir(host, 'state'),
                'load_balancer_libexec_dir': self.dir(host, 'bin'),
                'load_balancer_log_dir': self.dir(host, 'log'),
            }
        hosts['lb2'].update(load_balancer_config_mode='own', load_balancer_config_path=self.own_config,
                            load_balancer_extra_config_path=self.dir('lb2', 'zdt-global.cfg'))
        inventory = {'all': {'hosts': hosts, 'vars': {
            'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
            'load_balancer_python': '{{ ansible_playbook_python }}', 'load_balancer_use_systemd': False,
            'load_balancer_bind_address': '127.0.0.1', 'load_balancer_servers': servers,
            'load_balancer_check_interval': '300ms'}}}
        with open(self.inventory, 'w', encoding='utf-8') as handle:
            yaml.safe_dump(inventory, handle)

    def playbook(self, tasks, extra=None):
        # one load balancer failing stops them all (as upgrade.yml runs the roles)
        play = [{'name': 'Load balancers', 'hosts': 'all', 'gather_facts': False, 'any_errors_fatal': True, 'tasks': tasks}]
        path = os.path.join(self.tmp, 'play-%d.yml' % time.monotonic_ns())
        with open(path, 'w', encoding='utf-8') as handle:
            yaml.safe_dump(play, handle)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                   ANSIBLE_FORCE_COLOR='0', PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
        argv = [os.path.join(BIN, 'ansible-playbook'), '-i', self.inventory, path]
        if extra:
            argv += ['-e', json.dumps(extra)]
        started = time.monotonic()
        proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=300, check=False)
        out = proc.stdout.decode(errors='replace')
        print('ansible-playbook %s: %.1f s' % (os.path.basename(path), time.monotonic() - started))
        return proc.returncode, out

    def setup(self):
        return self.playbook([{'name': 'HAProxy', 'ansible.builtin.include_role': {'name': 'zdt.bluegreen.load_balancer'}}])

    def switch(self, active, steps, pause=1):
        role_vars = {
            'traffic_switch_socket': '{{ load_balancer_admin_socket }}',
            'traffic_switch_state_file': '{{ load_balancer_state_file }}',
            'traffic_switch_colors': COLORS, 'traffic_switch_active': active, 'traffic_switch_steps': steps,
            'traffic_switch_gate_url': 'http://127.0.0.1:{{ load_balancer_port }}',
            'traffic_switch_gate_checks': [{'path': '/health', 'status': 200}], 'traffic_switch_gate_requests': 2,
            'traffic_switch_gate_pause': pause, 'traffic_switch_drain_timeout': 10, 'traffic_switch_drain_on_timeout': 'shutdown',
        }
        return self.playbook([{'name': 'Switch', 'ansible.builtin.include_role': {'name': 'zdt.bluegreen.traffic_switch'},
                               'vars': role_vars}])

    def state(self, host):
        with hr.RuntimeClient(self.socket(host), timeout=5) as client:
            return dict((n, s.as_dict()) for n, s in client.servers('app').items())

    def close(self):
        for host in ('lb1', 'lb2'):
            pidfile = self.dir(host, 'haproxy.pid')
            if os.path.exists(pidfile):
                zdt_supervise.main(['stop', '--pidfile', pidfile])
        for proc in self.procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(self.tmp, ignore_errors=True)


def recap(out):
    import re  # pylint: disable=import-outside-toplevel
    return {m.group(1): int(m.group(2)) for m in re.finditer(r'^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)', out, re.M)}


@pytest.fixture(scope='module')
def pair():
    built = Pair()
    try:
        built.start_backends()
        built.write_inventory()
        yield built
    finally:
        built.close()


def loads(pair):
    """Steady reads through both load balancers, bounded in time and count."""
    return [LoadGenerator(pair.ports[host], keepalive=2, close=2, duration=120, max_requests=20000, path='/',
                          pause=0.02).start() for host in ('lb1', 'lb2')]


def stop(traffic):
    for load in traffic:
        load.stop()
    return traffic


def test_own_config_without_a_server_is_refused_naming_the_line(pair):
    pair.write_own_config(with_green=False)
    code, out = pair.playbook([{'name': 'HAProxy', 'ansible.builtin.include_role': {'name': 'zdt.bluegreen.load_balancer'}}])
    assert code != 0
    assert ('has no server green1: add the line "server green1 127.0.0.1:%d check"' % pair.ports['green']) in out, out[-3000:]
    assert not os.path.exists(pair.dir('lb2', 'haproxy.pid')) and not os.path.exists(pair.dir('lb2', 'zdt-global.cfg'))


def test_both_start_and_a_rerun_changes_nothing(pair):
    pair.write_own_config()
    with open(pair.own_config, encoding='utf-8') as handle:
        theirs = handle.read()
    code, out = pair.setup()
    assert code == 0, out[-5000:]
    with open(pair.own_config, encoding='utf-8') as handle:
        assert handle.read() == theirs   # never written
    with open(pair.dir('lb2', 'zdt-global.cfg'), encoding='utf-8') as handle:
        extra = handle.read()
    assert 'stats socket %s mode 600 level admin expose-fd listeners' % pair.socket('lb2') in extra
    assert 'server-state-file %s' % pair.dir('lb2', 'server-state') in extra
    for host in ('lb1', 'lb2'):
        state = pair.state(host)
        assert state['blue1']['admin_state'] == 'ready' and state['green1']['admin_state'] != 'ready', (host, state)
    code, out = pair.setup()
    assert code == 0 and set(recap(out).values()) == {0}, out[-3000:]


def test_steps_are_held_the_same_on_both_under_load(pair):
    traffic = loads(pair)
    try:
        code, out = pair.switch('green', [50, 100])
    finally:
        stop(traffic)
    assert code == 0, out[-5000:]
    assert out.count('TASK [zdt.bluegreen.traffic_switch : Compare every load balancer with the step]') == 2, out[-5000:]
    for host in ('lb1', 'lb2'):
        state = pair.state(host)
        assert state['green1'] == {'admin_state': 'ready', 'weight': 100}, (host, state)
        assert state['blue1']['admin_state'] == 'maint', (host, state)   # drained, then maint
    for load in traffic:
        assert load.errors == [] and load.non_2xx == 0, (load.errors[:5], load.statuses)
        assert load.versions.get('1') and load.versions.get('2'), load.versions


def test_a_load_balancer_whose_admin_socket_is_lost_mid_switch_fails_the_step_and_both_go_back(pair):
    """After the first step, lb2's admin socket path answers at level operator (its monitoring socket moved there):
    reads work, every change is refused. The second step fails on lb2; lb1 goes back to the first step, where lb2
    still is; with the admin socket back, a rerun puts both at 100 %."""
    admin, monitor, lost = pair.socket('lb2'), pair.dir('lb2', 'monitor.sock'), pair.socket('lb2') + '.lost'
    first_step = {'blue1': {'admin_state': 'ready', 'weight': 50}, 'green1': {'admin_state': 'ready', 'weight': 50}}

    def lose_lb2_admin_socket_after_the_first_step():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if pair.state('lb1') == first_step and pair.state('lb2') == first_step:
                    os.rename(admin, lost)
                    os.rename(monitor, admin)
                    return
            except OSError:
                pass
            time.sleep(0.05)

    traffic = loads(pair)
    saboteur = threading.Thread(target=lose_lb2_admin_socket_after_the_first_step)
    try:
        saboteur.start()
        code, out = pair.switch('blue', [50, 100], pause=2)
        saboteur.join(60)
        assert os.path.exists(lost), out[-5000:]
        assert code != 0
        flat = ' '.join(out.split())
        assert 'the step to blue 100 % failed: the switch failed on lb2' in flat and 'Permission denied' in flat, out[-5000:]
        assert 'Put back: lb1 to blue 50 %, lb2 to blue 50 %' in flat and 'NOT put back' not in flat, out[-5000:]
        assert pair.state('lb1') == first_step and pair.state('lb2') == first_step
        os.rename(admin, monitor)
        os.rename(lost, admin)
        code, out = pair.switch('blue', [50, 100], pause=0)
    finally:
        stop(traffic)
    assert code == 0, out[-5000:]
    for host in ('lb1', 'lb2'):
        assert pair.state(host)['blue1'] == {'admin_state': 'ready', 'weight': 100}, host
        assert pair.state(host)['green1']['admin_state'] == 'maint', host
    for load in traffic:
        assert load.errors == [] and load.non_2xx == 0, (load.errors[:5], load.statuses)
