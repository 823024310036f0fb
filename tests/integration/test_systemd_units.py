"""The systemd units the roles generate, rendered by the roles themselves and checked by systemd.

app_release renders `zdt-<name>-<color>.service` (tasks_from: unit) for both colors and load_balancer renders
`zdt-haproxy.service` (tasks_from: systemd_unit) into a scratch directory; `systemd-analyze verify` (offline: it
needs no booted systemd) must accept every one without a warning, and the settings the upgrade relies on are read
back from the files: the stop grace, the kill mode, the restart rules, the reload through the master socket, the
runtime directory that a boot empties. The units running under a booted systemd: molecule/systemd.
"""
import os
import shlex
import subprocess
import sys

import pytest
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
HAPROXY = '/usr/sbin/haproxy'
# Every character systemd or sh treats specially in a command line.
COMMAND = 'venv/bin/gunicorn -b $ZDT_BIND:$ZDT_PORT --log-format "%(h)s \\"%(r)s\\"" app:app'
STOP_TIMEOUT = 37


def render(tmp_path, app_vars=None, lb_vars=None):
    """Render the units with the roles into tmp_path/units; {file name: text}."""
    units = tmp_path / 'units'
    units.mkdir(exist_ok=True)
    zdt_app = {'name': 'shop', 'artifact': str(tmp_path), 'command': COMMAND, 'user': 'root',
               'base_dir': str(tmp_path / 'opt' / 'shop'), 'stop_timeout': STOP_TIMEOUT}
    playbook = [{
        'name': 'Render the units', 'hosts': 'localhost', 'connection': 'local', 'gather_facts': False,
        'vars': {'ansible_python_interpreter': sys.executable, 'zdt_app': zdt_app, 'app_release_version': '1.10.0', 'app_release_unit_dir': str(units),
                 'load_balancer_unit_dir': str(units), 'load_balancer_haproxy_bin': HAPROXY,
                 'load_balancer_python': sys.executable, 'load_balancer_servers': {'blue': [], 'green': []}},
        'tasks': [
            {'name': 'App unit of each color', 'ansible.builtin.include_role': {'name': 'zdt.bluegreen.app_release', 'tasks_from': 'unit'},
             'vars': dict({'app_release_color': '{{ item }}'}, **(app_vars or {})), 'loop': ['blue', 'green']},
            {'name': 'HAProxy unit', 'ansible.builtin.include_role': {'name': 'zdt.bluegreen.load_balancer', 'tasks_from': 'systemd_unit'},
             'vars': lb_vars or {}},
        ]}]
    path = tmp_path / 'render.yml'
    path.write_text(yaml.safe_dump(playbook), encoding='utf-8')
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', 'localhost,', str(path)], cwd=REPO_ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return {name: (units / name).read_text(encoding='utf-8') for name in sorted(os.listdir(units))}


def settings(text):
    """{section: {key: [values in order]}} of a unit file."""
    parsed, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('['):
            section = parsed.setdefault(line.strip('[]'), {})
            continue
        key, _sep, value = line.partition('=')
        section.setdefault(key, []).append(value)
    return parsed


def verify(paths):
    """systemd-analyze verify: (return code, the lines it printed about these files or their commands)."""
    proc = subprocess.run(['systemd-analyze', 'verify', '--man=no'] + [str(p) for p in paths], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=60, check=False)
    names = [os.path.basename(str(p)) for p in paths]
    lines = [line for line in proc.stdout.splitlines()
             if any(name in line for name in names) or 'executable' in line or 'ExecStart' in line]
    return proc.returncode, lines


@pytest.fixture(scope='module')
def units(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('units')
    return tmp, render(tmp)


def test_every_generated_unit_passes_systemd_analyze_verify(units):
    tmp, rendered = units
    assert sorted(rendered) == ['zdt-haproxy.service', 'zdt-shop-blue.service', 'zdt-shop-green.service']
    code, lines = verify([tmp / 'units' / name for name in rendered])
    assert code == 0 and lines == [], lines


def test_verify_catches_a_unit_whose_command_does_not_exist(tmp_path):
    rendered = render(tmp_path, lb_vars={'load_balancer_haproxy_bin': str(tmp_path / 'no-haproxy')})
    code, lines = verify([tmp_path / 'units' / 'zdt-haproxy.service'])
    assert code != 0 and any('no-haproxy' in line for line in lines), (code, lines, rendered['zdt-haproxy.service'])


@pytest.mark.parametrize('color', ['blue', 'green'])
def test_app_unit_stops_gracefully_and_restarts_a_dead_process(units, color):
    _tmp, rendered = units
    unit = settings(rendered['zdt-shop-%s.service' % color])
    service = unit['Service']
    # SIGTERM to the main process only; zdt_app.stop_timeout for the requests in flight; then SIGKILL to the rest.
    assert service['KillMode'] == ['mixed'] and service['KillSignal'] == ['SIGTERM']
    assert service['TimeoutStopSec'] == [str(STOP_TIMEOUT)]
    # kill -9 is a failure: restarted after 1 s, and never given up on.
    assert service['Restart'] == ['on-failure'] and service['RestartSec'] == ['1']
    assert unit['Unit']['StartLimitIntervalSec'] == ['0']
    assert unit['Install']['WantedBy'] == ['multi-user.target']
    assert service['EnvironmentFile'] == ['%s/opt/shop/%s/env' % (_tmp, color), '%s/opt/shop/%s/secret.env' % (_tmp, color)]
    assert service['WorkingDirectory'] == ['%s/opt/shop/releases/1.10.0' % _tmp]
    assert 'version 1.10.0' in unit['Unit']['Description'][0] and color in unit['Unit']['Description'][0]


def test_app_command_reaches_sh_unchanged(units):
    """systemd unquotes ExecStart (C escapes, %% specifiers, $$ variables); what sh then gets is the command itself."""
    _tmp, rendered = units
    exec_start = settings(rendered['zdt-shop-blue.service'])['Service']['ExecStart'][0]
    words = shlex.split(exec_start.replace('%%', '%').replace('$$', '$'))
    assert words == ['/bin/sh', '-c', 'exec ' + COMMAND]


def test_haproxy_unit_reloads_through_the_master_socket(units):
    _tmp, rendered = units
    service = settings(rendered['zdt-haproxy.service'])['Service']
    assert service['Type'] == ['notify']
    start = shlex.split(service['ExecStart'][0])
    assert start == [HAPROXY, '-Ws', '-S', '/run/zdt-haproxy/master.sock,mode,600', '-f', '/etc/haproxy/zdt-haproxy.cfg']
    check, reload = [shlex.split(line) for line in service['ExecReload']]
    assert check == [HAPROXY, '-c', '-q', '-f', '/etc/haproxy/zdt-haproxy.cfg']
    assert reload == [sys.executable, '/usr/local/libexec/zdt-bluegreen/zdt_haproxy_reload.py',
                      '--admin-socket', '/run/zdt-haproxy/admin.sock', '--master-socket', '/run/zdt-haproxy/master.sock',
                      '--state-file', '/var/lib/zdt-haproxy/server-state']
    assert service['KillMode'] == ['mixed'] and service['SuccessExitStatus'] == ['143']
    assert service['Restart'] == ['always']
    # A boot empties /run: systemd creates the sockets' directory before HAProxy starts.
    assert service['RuntimeDirectory'] == ['zdt-haproxy']


def test_haproxy_unit_without_sockets_under_run_has_no_runtime_directory(tmp_path):
    base = str(tmp_path / 'lb')
    rendered = render(tmp_path, lb_vars={'load_balancer_run_dir': base, 'load_balancer_admin_socket': base + '/a.sock',
                                         'load_balancer_master_socket': base + '/m.sock'})
    service = settings(rendered['zdt-haproxy.service'])['Service']
    assert 'RuntimeDirectory' not in service
    assert shlex.split(service['ExecStart'][0])[3] == base + '/m.sock,mode,600'
    code, lines = verify([tmp_path / 'units' / 'zdt-haproxy.service'])
    assert code == 0 and lines == [], lines
