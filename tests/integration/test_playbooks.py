"""The roles and playbooks: argument specs, syntax, and site.yml + upgrade.yml on a private sandbox."""
import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

from sandbox import Sandbox

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
PLAYBOOKS = ['site.yml', 'upgrade.yml', 'rollback.yml', 'contract.yml', 'status.yml']
INVENTORY = os.path.join(REPO_ROOT, 'inventories', 'sandbox')
RECAP = re.compile(r'^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


def ansible_env(extra=None):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_FORCE_COLOR='0', PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    env.update(extra or {})
    return env


def playbook(args, env=None, timeout=600):
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook')] + args, cwd=REPO_ROOT, env=ansible_env(env),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    return proc.returncode, proc.stdout.decode(errors='replace')


def recap(output):
    """{host: {'changed': n, 'failed': n}} from the PLAY RECAP."""
    return {m.group(1): {'ok': int(m.group(2)), 'changed': int(m.group(3)), 'failed': int(m.group(5))}
            for m in RECAP.finditer(output)}


@pytest.mark.parametrize('name', PLAYBOOKS)
def test_syntax_check(name):
    code, out = playbook(['-i', INVENTORY, '--syntax-check', os.path.join('playbooks', name)],
                         env={'ZDT_SANDBOX_DIR': tempfile.gettempdir()})
    assert code == 0, out


BAD_INPUT = [
    ('app_release', {'app_release_version': 2, 'app_release_color': 'purple'},
     r"app_release_color.*must be one of: blue, green|value of app_release_color must be one of"),
    ('app_release', {'app_release_color': 'blue'}, r'missing required arguments: app_release_version'),
    ('app_release', {'app_release_version': 'two', 'app_release_color': 'blue'}, r"app_release_version.*int"),
    ('schema_migration', {'schema_migration_file': '/tmp/x.yml', 'schema_migration_database': 'app',
                          'schema_migration_action': 'explode'}, r'schema_migration_action must be one of: expand'),
    ('schema_migration', {'schema_migration_file': '/tmp/x.yml', 'schema_migration_database': 'app',
                          'schema_migration_login': {'login_passwd': 'x'}},
     r'login_passwd'),
    ('traffic_switch', {'traffic_switch_colors': {'blue': ['b1']}, 'traffic_switch_active': 'blue',
                        'traffic_switch_steps': ['ten']}, r'traffic_switch_steps'),
    ('traffic_switch', {'traffic_switch_colors': {'blue': ['b1']}}, r'missing required arguments: traffic_switch_active'),
    ('smoke_test', {'smoke_test_urls': 'http://x', 'smoke_test_version': 'v2'}, r'smoke_test_version'),
    ('load_balancer', {'load_balancer_servers': [], 'load_balancer_port': 'eighty'}, r'load_balancer_(servers|port)'),
]


@pytest.mark.parametrize('role,role_vars,message', BAD_INPUT, ids=[b[0] + '-' + '-'.join(sorted(b[1])) for b in BAD_INPUT])
def test_role_argument_specs_reject_bad_input(tmp_path, role, role_vars, message):
    play = [{'name': 'Bad input', 'hosts': 'localhost', 'gather_facts': False,
             'tasks': [{'name': 'Role with bad input', 'ansible.builtin.include_role': {'name': 'zdt.bluegreen.' + role},
                        'vars': role_vars}]}]
    path = tmp_path / 'bad.yml'
    path.write_text(json.dumps(play))
    code, out = playbook(['-i', 'localhost,', '-c', 'local', str(path)])
    assert code != 0, out
    assert 'Validating arguments against arg spec' in out, out
    assert re.search(message, out), out
    assert recap(out)['localhost']['changed'] == 0


@pytest.fixture(scope='module')
def stack():
    """A private sandbox with MariaDB running; everything it started is stopped at the end."""
    root = tempfile.mkdtemp(prefix='zdt-pb-')
    sandbox = Sandbox(root, preferred_ports={})
    try:
        sandbox.mariadb.start()
        yield sandbox
    finally:
        sandbox.stop_all()


def run(stack, name, extra=None):
    args = ['-i', INVENTORY, os.path.join('playbooks', name)]
    for key, value in (extra or {}).items():
        args += ['-e', '%s=%s' % (key, value)]
    code, out = playbook(args, env={'ZDT_SANDBOX_DIR': stack.root})
    assert code == 0, out[-6000:]
    return out


def http_get(port, path):
    import http.client  # pylint: disable=import-outside-toplevel
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    try:
        conn.request('GET', path)
        resp = conn.getresponse()
        return resp.status, resp.getheader('X-App-Version'), json.loads(resp.read() or b'null')
    finally:
        conn.close()


def columns(stack, table):
    with stack.mariadb.root_connect('app') as conn, conn.cursor() as cur:
        cur.execute('SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s',
                    ('app', table))
        return sorted(r[0] for r in cur.fetchall())


def test_site_then_upgrade(stack):
    ports = stack.ports
    out = run(stack, 'site.yml')
    assert http_get(ports['lb'], '/health')[1] == '1'
    assert http_get(ports['blue'], '/health')[0] == 200

    out = run(stack, 'site.yml')
    changes = recap(out)
    assert all(v['changed'] == 0 for v in changes.values()), changes

    subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'sample', 'seed.py'), '--count', '1000', '--quiet',
                    '--db-socket', stack.mariadb.socket, '--db-user', 'root', '--db-name', 'app'], check=True)

    out = run(stack, 'upgrade.yml', {'zdt_canary_steps': '50,100'})
    status, version, body = http_get(ports['lb'], '/api/users?limit=500')
    assert (status, version) == (200, '2')
    assert len(body['users']) == 500
    assert columns(stack, 'users') == ['email', 'id', 'name']
    assert 'user_id' in columns(stack, 'addresses')
    with stack.mariadb.root_connect('app') as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'app' AND TRIGGER_NAME LIKE 'zdt%%'")
        assert cur.fetchone()[0] == 0
        cur.execute('SELECT COUNT(*) FROM addresses')
        assert cur.fetchone()[0] > 900   # about 5 % of the seeded users have no address
    # the old color is stopped, its server in maint
    with pytest.raises(OSError):
        http_get(ports['blue'], '/health')

    out = run(stack, 'upgrade.yml')
    changes = recap(out)
    assert all(v['changed'] == 0 for v in changes.values()), changes

    out = run(stack, 'site.yml')
    changes = recap(out)
    assert all(v['changed'] == 0 for v in changes.values()), changes
    assert http_get(ports['lb'], '/health')[1] == '2'
