"""The app contract with a service unlike the sample: site.yml and upgrade.yml drive "inventory-api" from inventory
variables alone.

inventory-api (apps/inventory_api/server.py) has its own health path (/status/ready), tells its version in a JSON
path (build.version), runs as its own account after an install step (a virtualenv), and is released as tarballs with
one top-level directory and a .sha256 file, served over HTTP by a local artifact server on loopback. Its versions
order differently as strings and as versions (1.9.0 < 1.10.0), with zdt_version_scheme semver. No database: every
release is app-only. The tests run in order on one stack, as an operator would:
first deploy, an upgrade under load, a rerun, a downgrade refused, rollback.yml without fetching, a checksum
mismatch refused before any change, a failed install that leaves no release, a failing gate check rolled back under
load, and an app process killed -9 and
restarted by its supervisor; the first deploy runs at -vvv with --diff to show that secret_env never appears.
"""
import contextlib
import hashlib
import http.client
import io
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

import pytest
import yaml

from zdt_lab.http_backend import LoadGenerator
from zdt_lab.sandbox import free_port
from zdt_lab.supervisor import zdt_supervise

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'apps', 'inventory_api', 'server.py')
BIN = os.path.dirname(sys.executable)
# Service accounts of this run (two runs on one machine must not share one: the role sets its home to base_dir)
USER = 'zdt-inv-%s' % secrets.token_hex(4)
USER2 = USER + '-2'   # the second green host's account (a second machine would reuse USER)
RECAP = re.compile(r'^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


def build_release(dist, version, gate_fails=False, wrong_checksum=False, install_fails=False, errors_every=0):
    """inventory-api-<version>.tar.gz (one top-level directory) and its .sha256 file (a wrong one on request)."""
    top = 'inventory-api-%s' % version
    files = {'server.py': open(SERVER, 'rb').read(), 'VERSION': version.encode() + b'\n'}
    if gate_fails:
        files['GATE_FAILS'] = b''
    if install_fails:
        files['BREAK_INSTALL'] = b''
    if errors_every:
        files['ERRORS_EVERY'] = b'%d\n' % errors_every
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w:gz') as archive:
        info = tarfile.TarInfo(top)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo('%s/%s' % (top, name))
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    name = '%s.tar.gz' % top
    with open(os.path.join(dist, name), 'wb') as handle:
        handle.write(raw.getvalue())
    digest = hashlib.sha256(raw.getvalue()).hexdigest()
    if wrong_checksum:
        digest = hashlib.sha256(b'not the release').hexdigest()
    with open(os.path.join(dist, name + '.sha256'), 'w', encoding='ascii') as handle:
        handle.write('%s  %s\n' % (digest, name))


class ArtifactServer(object):
    """python -m http.server on loopback over the release directory; its log says what was fetched."""

    def __init__(self, root, port):
        self.root, self.port, self.proc = root, port, None
        self.log = os.path.join(os.path.dirname(root), 'artifact-server.log')

    def start(self):
        with open(self.log, 'ab') as log:
            self.proc = subprocess.Popen([sys.executable, '-m', 'http.server', '--bind', '127.0.0.1', str(self.port),
                                          '--directory', self.root], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                http.client.HTTPConnection('127.0.0.1', self.port, timeout=1).request('HEAD', '/')
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError('artifact server did not start')

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def fetched(self):
        with open(self.log, encoding='utf-8', errors='replace') as handle:
            return re.findall(r'"GET /([^ ]+) HTTP', handle.read())


class Stack(object):
    """A private inventory (one load balancer, one blue host, two green hosts, all on this machine) and what it starts.
    The second green host has its own base directory, as a second machine would."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix='zdt-app-contract-')
        os.chmod(self.tmp, 0o755)   # the service account must reach its base directory
        self.dist = os.path.join(self.tmp, 'dist')
        os.makedirs(self.dist)
        self.ports = dict(lb=free_port(), blue=free_port(), green=free_port(), green2=free_port(), artifacts=free_port())
        self.secret = 'tok-' + secrets.token_hex(12)
        self.base = os.path.join(self.tmp, 'app')
        self.base2 = os.path.join(self.tmp, 'app-green-2')
        self.lb_dir = os.path.join(self.tmp, 'lb')
        self.artifacts = ArtifactServer(self.dist, self.ports['artifacts'])
        self.users_existing = [name for name in (USER, USER2) if self._user_exists(name)]
        self.inventory = os.path.join(self.tmp, 'inventory')
        self._write_inventory()

    @staticmethod
    def _user_exists(name):
        try:
            pwd.getpwnam(name)
            return True
        except KeyError:
            return False

    def _write_inventory(self):
        url = 'http://127.0.0.1:%d' % self.ports['artifacts']
        group_vars = {
            'ansible_connection': 'local',
            'ansible_host': '127.0.0.1',
            'ansible_python_interpreter': '{{ ansible_playbook_python }}',
            'zdt_version_scheme': 'semver',
            'zdt_migration': 'none',
            'zdt_app': {
                'name': 'inventory-api',
                'artifact': url + '/inventory-api-{{ zdt_version }}.tar.gz',
                'checksum': 'sha256:' + url + '/inventory-api-{{ zdt_version }}.tar.gz.sha256',
                'install': ('test ! -e BREAK_INSTALL && python3 -m venv --without-pip venv'
                            ' && printf "installed %s" "$ZDT_VERSION" > installed.txt'),
                'command': 'venv/bin/python server.py',
                'env': {'REGION': 'eu-test'},
                'secret_env': {'API_TOKEN': self.secret},
                'base_dir': self.base,
                'user': USER,
                'stop_timeout': 10,
                'health': {'path': '/status/ready', 'status': 200, 'timeout': 20},
                'version': {'json': 'build.version'},
            },
            'zdt_smoke_checks': [{'path': '/api/items?limit=5', 'status': 200, 'body': '"items"'}],
            'zdt_gate_checks': [{'path': '/api/items?limit=5'}, {'path': '/api/gate', 'status': 200}],
            'zdt_gate_requests': 4,
            'app_release_python': '{{ ansible_playbook_python }}',
            'app_release_use_systemd': False,
            'app_release_cache_dir': os.path.join(self.tmp, 'cache'),
            'load_balancer_bind_address': '127.0.0.1',
            'load_balancer_port': self.ports['lb'],
            'load_balancer_use_systemd': False,
            'load_balancer_python': '{{ ansible_playbook_python }}',
        }
        for key in ('config_path', 'run_dir', 'state_dir', 'libexec_dir', 'log_dir'):
            group_vars['load_balancer_' + key] = os.path.join(self.lb_dir, 'haproxy.cfg' if key == 'config_path' else key)
        hosts = {'all': {'children': {
            'load_balancers': {'hosts': {'inv-lb': {}}},
            'app_blue': {'hosts': {'inv-blue-1': {'app_release_port': self.ports['blue']}}},
            'app_green': {'hosts': {'inv-green-1': {'app_release_port': self.ports['green']},
                                    'inv-green-2': {'app_release_port': self.ports['green2'],
                                                    'zdt_app': dict(group_vars['zdt_app'], base_dir=self.base2, user=USER2)}}}}}}
        os.makedirs(os.path.join(self.inventory, 'group_vars'))
        with open(os.path.join(self.inventory, 'hosts.yml'), 'w', encoding='utf-8') as handle:
            yaml.safe_dump(hosts, handle)
        with open(os.path.join(self.inventory, 'group_vars', 'all.yml'), 'w', encoding='utf-8') as handle:
            yaml.safe_dump(group_vars, handle)

    def playbook(self, name, *args, check=True):
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
                   PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
        proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', self.inventory, os.path.join('playbooks', name)]
                              + list(args), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=600, check=False)
        out = proc.stdout.decode(errors='replace')
        if check:
            assert proc.returncode == 0, out[-8000:]
        return proc.returncode, out

    def get(self, port, path):
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
        try:
            conn.request('GET', path)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b'null')
        finally:
            conn.close()

    def served_version(self, port):
        return self.get(port, '/status/ready')[1]['build']['version']

    def releases(self):
        return sorted(os.listdir(os.path.join(self.base, 'releases')))

    def record(self, color):
        with open(os.path.join(self.base, color, 'version'), encoding='utf-8') as handle:
            return handle.read().strip()

    def pidfiles(self):
        found = []
        for top in (os.path.join(self.base, 'run'), os.path.join(self.base2, 'run'), os.path.join(self.lb_dir, 'run_dir')):
            if os.path.isdir(top):
                found.extend(os.path.join(top, f) for f in os.listdir(top) if f.endswith('.pid'))
        return found

    def close(self):
        self.artifacts.stop()
        for pidfile in self.pidfiles():   # everything the roles started, by pid; one that cannot be stopped is said
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    zdt_supervise.main(['stop', '--pidfile', pidfile])
            except Exception as exc:  # pylint: disable=broad-except
                print('could not stop %s: %r' % (pidfile, exc))
        for name in (USER, USER2):
            if name not in self.users_existing and self._user_exists(name):
                subprocess.run(['userdel', name], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def recap(out):
    return {m.group(1): int(m.group(3)) for m in RECAP.finditer(out)}


def load(stack):
    """Steady reads through the load balancer (about 100/s), bounded in time and count; the version from X-Build."""
    return LoadGenerator(stack.ports['lb'], keepalive=3, close=2, duration=240, max_requests=40000, path='/api/items?limit=5',
                         pause=0.05, version_header='X-Build').start()


@pytest.fixture(scope='module')
def stack():
    built = Stack()
    try:
        for version in ('1.9.0', '1.10.0'):
            build_release(built.dist, version)
        build_release(built.dist, '1.11.0', wrong_checksum=True)
        build_release(built.dist, '1.11.1', gate_fails=True)
        build_release(built.dist, '1.11.2', install_fails=True)
        build_release(built.dist, '1.11.3', errors_every=20)
        built.artifacts.start()
        yield built
    finally:
        built.close()


def test_first_deploy_and_an_upgrade_under_load(stack):
    # the first deploy writes the secret environment: at -vvv with --diff its value must not show
    _code, out = stack.playbook('site.yml', '-e', 'zdt_version=1.9.0', '-vvv', '--diff')
    assert 'Write the secret environment' in out and stack.secret not in out
    secret_file = os.path.join(stack.base, 'blue', 'secret.env')
    assert stack.secret in open(secret_file, encoding='utf-8').read() and os.stat(secret_file).st_mode & 0o777 == 0o600
    assert stack.served_version(stack.ports['lb']) == '1.9.0'
    assert stack.get(stack.ports['blue'], '/env')[1] == {'token_set': True, 'region': 'eu-test', 'user': USER, 'version': '1.9.0'}
    assert stack.record('blue') == '1.9.0' and stack.releases() == ['1.9.0']
    # the install step ran as the service account in the release directory
    release = os.path.join(stack.base, 'releases', '1.9.0')
    assert os.stat(os.path.join(release, 'installed.txt')).st_uid == pwd.getpwnam(USER).pw_uid
    traffic = load(stack)
    try:
        _code, out = stack.playbook('upgrade.yml', '-e', 'zdt_version=1.10.0', '-e', 'zdt_canary_steps=50,100')
    finally:
        traffic.stop()
    assert 'version 1.10.0 goes to green' in out
    assert traffic.errors == [] and traffic.non_2xx == 0, (traffic.errors[:5], traffic.statuses)
    assert traffic.versions.get('1.9.0') and traffic.versions.get('1.10.0'), traffic.versions
    assert stack.served_version(stack.ports['lb']) == '1.10.0'
    assert (stack.record('blue'), stack.record('green')) == ('1.9.0', '1.10.0')
    assert stack.releases() == ['1.10.0', '1.9.0']   # the one blue last ran is kept for a rollback
    with pytest.raises(OSError):
        stack.get(stack.ports['blue'], '/status/ready')
    print('upgrade under load: %d requests, statuses %s, versions %s' % (traffic.sent, traffic.statuses, traffic.versions))


def test_a_rerun_changes_nothing(stack):
    _code, out = stack.playbook('upgrade.yml', '-e', 'zdt_version=1.10.0')
    assert all(n == 0 for n in recap(out).values()), recap(out)


def test_a_downgrade_is_refused_naming_both_versions(stack):
    code, out = stack.playbook('upgrade.yml', '-e', 'zdt_version=1.9.0', check=False)
    assert code != 0
    assert 'the live color green runs version 1.10.0, newer than the target 1.9.0' in out, out[-3000:]
    assert all(n == 0 for n in recap(out).values()), recap(out)
    assert stack.served_version(stack.ports['lb']) == '1.10.0'


def test_rollback_restarts_the_old_release_without_fetching(stack):
    fetched = len(stack.artifacts.fetched())
    stack.artifacts.stop()   # nothing could be fetched now
    try:
        stack.playbook('rollback.yml')
    finally:
        stack.artifacts.start()
    assert len(stack.artifacts.fetched()) == fetched
    assert stack.served_version(stack.ports['lb']) == '1.9.0'
    with pytest.raises(OSError):
        stack.get(stack.ports['green'], '/status/ready')
    # and forward again: green still holds 1.10.0, so nothing is fetched either
    before = len(stack.artifacts.fetched())
    stack.playbook('upgrade.yml', '-e', 'zdt_version=1.10.0')
    assert stack.served_version(stack.ports['lb']) == '1.10.0' and len(stack.artifacts.fetched()) == before


def test_a_checksum_mismatch_is_refused_before_any_change(stack):
    code, out = stack.playbook('upgrade.yml', '-e', 'zdt_version=1.11.0', check=False)
    assert code != 0
    assert 'did not match' in out and 'inventory-api-1.11.0.tar.gz' in out, out[-3000:]
    assert '1.11.0' not in stack.releases()
    hosts = recap(out)
    assert hosts['inv-blue-1'] == 0 and hosts['inv-lb'] == 0, hosts
    assert stack.served_version(stack.ports['lb']) == '1.10.0'
    assert stack.record('blue') == '1.9.0'


def test_a_failed_install_leaves_no_release(stack):
    code, out = stack.playbook('upgrade.yml', '-e', 'zdt_version=1.11.2', check=False)
    assert code != 0
    assert 'zdt_app.install of release 1.11.2 failed on inv-blue-1' in out and 'the release was removed' in out, out[-4000:]
    assert '1.11.2' not in stack.releases() and not any(r.startswith('.staging') for r in os.listdir(
        os.path.join(stack.base, 'releases')))
    assert stack.served_version(stack.ports['lb']) == '1.10.0' and stack.record('blue') == '1.9.0'


def test_a_failing_gate_check_is_rolled_back_under_load_while_one_old_host_is_unhealthy(stack):
    # inv-green-2 (old color) answers 503 on its health check: the rollback still goes to green, naming it
    flag = os.path.join(stack.base2, 'releases', '1.10.0', 'UNHEALTHY')
    open(flag, 'w', encoding='ascii').close()
    traffic = load(stack)
    try:
        code, out = stack.playbook('upgrade.yml', '-e', 'zdt_version=1.11.1', '-e', 'zdt_canary_steps=50,100', check=False)
    finally:
        traffic.stop()
        os.unlink(flag)
    assert code != 0
    assert 'GET http://127.0.0.1:%d/api/gate: expected status 200, got status 500' % stack.ports['lb'] in out, out[-4000:]
    assert ('Rolled back: traffic on green (version 1.10.0, without inv-green-2, which fail their health check), '
            'version 1.11.1 stopped') in out, out[-4000:]
    assert traffic.errors == [] and traffic.non_2xx == 0, (traffic.errors[:5], traffic.statuses)
    assert traffic.versions.get('1.11.1'), traffic.versions   # the canary took traffic before its gate failed
    assert stack.served_version(stack.ports['lb']) == '1.10.0'
    with pytest.raises(OSError):
        stack.get(stack.ports['blue'], '/status/ready')


def test_one_error_in_twenty_is_rolled_back_at_the_first_canary_step_by_the_error_rate_gate(stack):
    # 1.11.3 answers 500 to one /api/items request in twenty; no URL gate: HAProxy's counters decide
    traffic = load(stack)
    try:
        code, out = stack.playbook('upgrade.yml', '-e', 'zdt_version=1.11.3', '-e', 'zdt_canary_steps=50,100',
                                   '-e', 'zdt_gate_pause=2', '-e', '{"zdt_gate_checks": []}', check=False)
    finally:
        traffic.stop()
    assert code != 0
    flat = ' '.join(out.split())
    assert 'failed at "Gate - the error rate of the active color over the step, on every load balancer"' in flat, out[-4000:]
    assert re.search(r'error rate \d+\.\d\d % is above the allowed 0\.00 %: \d+ errors in \d+ requests of inv-blue-1 on 1 '
                     r'load balancer \(\d+ 5xx answers, 0 response errors, 0 connection errors\)', flat), out[-4000:]
    assert 'Rolled back: traffic on green (version 1.10.0), version 1.11.3 stopped' in flat, out[-4000:]
    # the first step (50 %) was the only one
    assert out.count('TASK [zdt.bluegreen.traffic_switch : Give the active color its share of the traffic in percent') == 1
    assert stack.served_version(stack.ports['lb']) == '1.10.0'
    # the new version's errors are its own: the old version's clients saw none, and nobody saw a socket error
    assert traffic.errors == [], traffic.errors[:5]
    assert set(traffic.by_version.get('1.10.0', {})) == {200}, traffic.by_version
    assert traffic.by_version.get('1.11.3', {}).get(500), traffic.by_version


def test_a_killed_app_process_is_restarted_by_its_supervisor(stack):
    pidfile = os.path.join(stack.base, 'run', 'inventory-api-green.pid')
    child = zdt_supervise.read_record(pidfile + '.child')['pid']
    os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        record = zdt_supervise.read_record(pidfile + '.child') or {}
        if record.get('pid') not in (None, child):
            try:
                if stack.served_version(stack.ports['green']) == '1.10.0':
                    break
            except OSError:
                pass
        time.sleep(0.1)
    else:
        raise AssertionError('the service was not restarted: %s' % zdt_supervise.read_record(pidfile + '.child'))
    assert zdt_supervise.read_record(pidfile + '.child')['restarts'] == 1
