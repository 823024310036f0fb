"""The roles and playbooks: argument specs, syntax, and site.yml + upgrade.yml on a private sandbox."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from zdt_lab.http_probe import get as http_get
from zdt_lab.sandbox import Sandbox

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


APP = {'name': 'shop', 'artifact': '/x.tgz', 'command': 'x'}
BAD_INPUT = [
    ('app_release', {'app_release_version': '2', 'app_release_color': 'purple', 'app_release_app': APP},
     r"app_release_color.*must be one of: blue, green|value of app_release_color must be one of"),
    ('app_release', {'app_release_color': 'blue', 'app_release_app': APP}, r'missing required arguments: app_release_version'),
    ('app_release', {'app_release_version': '2', 'app_release_color': 'blue',
                     'app_release_app': {'name': 'Shop!', 'artifact': '/x.tgz', 'command': 'x'}}, r"zdt_app\.name: must be 1-48 of"),
    ('app_release', {'app_release_version': '1/../2', 'app_release_color': 'blue',
                     'app_release_app': APP}, r"the version must be 1-64 of"),
    ('schema_migration', {'schema_migration_file': '/tmp/x.yml', 'schema_migration_database': 'app',
                          'schema_migration_action': 'explode'}, r'schema_migration_action must be one of: expand'),
    ('schema_migration', {'schema_migration_file': '/tmp/x.yml', 'schema_migration_database': 'app',
                          'schema_migration_login': {'login_passwd': 'x'}},
     r'login_passwd'),
    ('traffic_switch', {'traffic_switch_colors': {'blue': ['b1']}, 'traffic_switch_active': 'blue',
                        'traffic_switch_steps': ['ten']}, r'traffic_switch_steps'),
    ('traffic_switch', {'traffic_switch_colors': {'blue': ['b1']}}, r'missing required arguments: traffic_switch_active'),
    ('smoke_test', {'smoke_test_urls': 'http://x', 'smoke_test_version': 'v2'}, r'smoke_test_urls'),
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


def private_sandbox(prefix):
    """A private sandbox with MariaDB running; everything it started is stopped, then its directory removed."""
    sandbox = Sandbox(tempfile.mkdtemp(prefix=prefix), preferred_ports={})
    try:
        sandbox.mariadb.start()
        yield sandbox
    finally:
        sandbox.stop_all()
        shutil.rmtree(sandbox.root, ignore_errors=True)


@pytest.fixture(scope='module')
def stack():
    yield from private_sandbox('zdt-pb-')


def run(stack, name, extra=None):
    args = ['-i', INVENTORY, os.path.join('playbooks', name)]
    for key, value in (extra or {}).items():
        args += ['-e', '%s=%s' % (key, value)]
    code, out = playbook(args, env={'ZDT_SANDBOX_DIR': stack.root})
    assert code == 0, out[-6000:]
    return out


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
    assert len(json.loads(body)['users']) == 500
    # the contract is deferred by default: both shapes stay, and the run's last words say how to contract
    assert 'address_line_1' in columns(stack, 'users')
    assert 'once version 2 has baked, run contract.yml' in out, out[-4000:]
    out = run(stack, 'contract.yml', {'zdt_version': '2'})
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


def servers_state(stack):
    """{server: (admin_state, weight)} of the app backend from HAProxy's runtime API."""
    out = stack.haproxy.admin_command('show servers state app')
    state = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[0].isdigit():
            state[fields[3]] = (fields[6], fields[7])   # srv_admin_state, srv_uweight
    return state


def test_rollback_refused_after_contract(stack):
    """rollback.yml once the contract ran: a clear refusal before any app or traffic task, nothing changed."""
    ports = stack.ports
    try:
        upgraded = http_get(ports['lb'], '/health')[1] == '2'
    except OSError:
        upgraded = False
    if not upgraded:   # run alone: get to a completed upgrade first
        run(stack, 'site.yml')
        run(stack, 'upgrade.yml', {'zdt_defer_contract': 'false'})
    with stack.mariadb.root_connect('app') as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM zdt_migration_state WHERE migration_id = 2 AND phase = 'contract'")
        assert cur.fetchall() == (('done',),)
    haproxy_before = servers_state(stack)
    users_columns, addresses_columns = columns(stack, 'users'), columns(stack, 'addresses')

    code, out = playbook(['-i', INVENTORY, os.path.join('playbooks', 'rollback.yml')], env={'ZDT_SANDBOX_DIR': stack.root})
    assert code != 0, out[-6000:]
    assert 'rollback.yml refused before touching any app or the traffic' in out, out[-6000:]
    assert 'migration 2: rollback refused, its contract phase already ran' in out, out[-6000:]
    # it stopped in its first play: no app, traffic or schema task ran
    for task in ('Run the old version on the old color', 'Put all traffic on the old color', 'Stop the new version',
                 'Drop the sync triggers and undo the expand'):
        assert 'TASK [' + task not in out, out[-6000:]
    assert all(v['changed'] == 0 for v in recap(out).values()), recap(out)
    # traffic and apps untouched: v2 on green serves, v1 on blue still stopped, HAProxy state as before
    assert servers_state(stack) == haproxy_before
    assert http_get(ports['lb'], '/health')[1] == '2'
    assert http_get(ports['green'], '/health')[:2] == (200, '2')
    with pytest.raises(OSError):
        http_get(ports['blue'], '/health')
    assert (columns(stack, 'users'), columns(stack, 'addresses')) == (users_columns, addresses_columns)


@pytest.fixture
def fresh_stack():
    """A second private sandbox for a test that needs its own history."""
    yield from private_sandbox('zdt-pb-rb-')


def test_rollback_before_contract(fresh_stack):
    """rollback.yml with the contract deferred: the up-front check lets it through (the sync triggers are its
    only objection), v1 serves again on blue, v2 stops, the triggers and the expand are undone."""
    stack = fresh_stack
    ports = stack.ports
    run(stack, 'site.yml')
    subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'sample', 'seed.py'), '--count', '200', '--quiet',
                    '--db-socket', stack.mariadb.socket, '--db-user', 'root', '--db-name', 'app'], check=True)
    run(stack, 'upgrade.yml', {'zdt_defer_contract': 'true'})
    assert http_get(ports['lb'], '/health')[1] == '2'

    out = run(stack, 'rollback.yml')
    assert 'rollback.yml refused' not in out
    status, version, body = http_get(ports['lb'], '/api/users?limit=200')
    assert (status, version) == (200, '1')
    assert len(json.loads(body)['users']) == 200
    with pytest.raises(OSError):
        http_get(ports['green'], '/health')
    assert columns(stack, 'addresses') == []   # the expand is undone
    assert 'address_line_1' in columns(stack, 'users')
    with stack.mariadb.root_connect('app') as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'app' AND TRIGGER_NAME LIKE 'zdt%%'")
        assert cur.fetchone()[0] == 0
