"""A contained systemd host (zdt_lab.contained_host) boots, takes Ansible's file payloads, reboots and powers off
leaving nothing behind; a launch that is not contained refuses to start systemd.

The machine's /tmp holds a sentinel file through every boot; the machine's cgroup hierarchies have the same
directories before and after; the host's PID 1 and its launcher are gone by pid; the overlay is deleted.
"""
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid

import pytest
import yaml

from zdt_lab.contained_host import CGROUP_ROOT, ContainedHost, ContainedHostError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def cgroup_dirs():
    """Every cgroup directory of the machine, two levels deep, in every hierarchy."""
    found = set()
    for hierarchy in os.listdir('/sys/fs/cgroup'):
        top = os.path.join('/sys/fs/cgroup', hierarchy)
        for entry in os.listdir(top):
            path = os.path.join(top, entry)
            if os.path.isdir(path):
                found.add(path)
                found.update(os.path.join(path, sub) for sub in os.listdir(path) if os.path.isdir(os.path.join(path, sub)))
    return found


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid, encoding='utf-8') as handle:
            return ') Z ' not in handle.read()
    except OSError:
        return False


@pytest.fixture(scope='module')
def machine():
    """A network namespace for the hosts, a state directory, a sentinel in the machine's /tmp, the cgroups before."""
    netns = 'zdt-cht-' + uuid.uuid4().hex[:6]
    subprocess.run(['ip', 'netns', 'add', netns], check=True)
    state = tempfile.mkdtemp(prefix='zdt-contained-', dir='/var/tmp')
    # Ansible's remote_tmp for the host (ansible_remote_tmp): the one machine directory the host sees (never below
    # /tmp, /var/tmp or /run, which must be fresh inside).
    os.makedirs(os.path.expanduser('~/.ansible/tmp'), exist_ok=True)
    ansible_tmp = tempfile.mkdtemp(prefix='zdt-contained-tmp-', dir=os.path.expanduser('~/.ansible/tmp'))
    sentinel = os.path.join('/tmp', 'zdt-sentinel-' + uuid.uuid4().hex)
    with open(sentinel, 'w', encoding='utf-8') as handle:
        handle.write('still here\n')
    before = cgroup_dirs()
    try:
        yield {'netns': netns, 'state': state, 'sentinel': sentinel, 'cgroups': before, 'ansible_tmp': ansible_tmp}
    finally:
        for name in os.listdir(state):
            ContainedHost(state, name).destroy()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(ansible_tmp, ignore_errors=True)
        subprocess.run(['ip', 'netns', 'del', netns], check=False)
        assert os.path.exists(sentinel)
        os.unlink(sentinel)


@pytest.fixture(scope='module')
def host(machine):
    booted = ContainedHost(machine['state'], 'ch1', netns=machine['netns'], shares=[machine['ansible_tmp']])
    assert booted.boot(timeout=60)
    return booted


def inside(host, *argv):
    return host.command(list(argv)).stdout


def test_host_boots_on_its_own_root_network_and_cgroups(host, machine):
    assert inside(host, 'systemctl', 'is-system-running').strip() == 'running'
    assert inside(host, 'hostname').strip() == 'ch1'
    mounts = dict(line.split() for line in inside(host, 'findmnt', '-rn', '-o', 'TARGET,FSTYPE').splitlines())
    assert mounts['/'] == 'overlay' and mounts['/tmp'] == mounts['/var/tmp'] == mounts['/run'] == 'tmpfs'
    assert mounts['/sys/fs/cgroup'] == 'cgroup2'
    assert os.path.basename(machine['sentinel']) not in inside(host, 'ls', '-a', '/tmp')
    assert inside(host, 'ip', '-o', 'link').split()[1] == 'lo:' and len(inside(host, 'ip', '-o', 'link').splitlines()) == 1
    # The machine's own services are masked inside; only this host's units run.
    for unit in ('mariadb.service', 'haproxy.service', 'apt-daily.timer'):
        assert host.command(['systemctl', 'is-enabled', unit], check=False).stdout.strip() == 'masked', unit
        state = host.command(['systemctl', 'is-active', unit], check=False).stdout.strip()
        assert state == 'inactive', (unit, state)
    # systemd's cgroups are below this host's directory of the v2 hierarchy; nothing new anywhere else.
    assert os.path.isdir(os.path.join(host.cgroup, 'system.slice', 'systemd-journald.service'))
    below = {os.path.join(host.cgroup, d) for d in os.listdir(host.cgroup) if os.path.isdir(os.path.join(host.cgroup, d))}
    assert cgroup_dirs() - machine['cgroups'] == {host.cgroup} | below
    assert os.path.exists(machine['sentinel'])


def run_playbook(host, machine, tmp_path, plays):
    inventory = {'all': {'hosts': {'ch1': {'ansible_connection': 'local', 'ansible_python_interpreter': host.wrapper,
                                           'ansible_remote_tmp': machine['ansible_tmp']}}}}
    (tmp_path / 'hosts.yml').write_text(yaml.safe_dump(inventory), encoding='utf-8')
    (tmp_path / 'play.yml').write_text(yaml.safe_dump(plays), encoding='utf-8')
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', str(tmp_path / 'hosts.yml'), str(tmp_path / 'play.yml')],
                          cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def test_ansible_copy_template_and_unarchive_reach_the_host(host, machine, tmp_path):
    """With ansible_connection local, Ansible writes module files and payloads in the controller's remote_tmp: shared."""
    src = tmp_path / 'payload'
    src.mkdir()
    (src / 'hello.txt').write_text('hello from the archive\n', encoding='utf-8')
    with tarfile.open(tmp_path / 'payload.tar.gz', 'w:gz') as tar:
        tar.add(src / 'hello.txt', arcname='hello.txt')
    (tmp_path / 'unit.j2').write_text('name={{ inventory_hostname }}\n', encoding='utf-8')
    out = run_playbook(host, machine, tmp_path, [{'hosts': 'ch1', 'gather_facts': False, 'tasks': [
        {'ansible.builtin.file': {'path': '/etc/zdt-probe', 'state': 'directory', 'mode': '0755'}},
        {'ansible.builtin.copy': {'content': 'copied\n', 'dest': '/etc/zdt-probe/copied', 'mode': '0644'}},
        {'ansible.builtin.template': {'src': str(tmp_path / 'unit.j2'), 'dest': '/etc/zdt-probe/templated', 'mode': '0644'}},
        {'ansible.builtin.file': {'path': '/opt/zdt-probe', 'state': 'directory', 'mode': '0755'}},
        {'ansible.builtin.unarchive': {'src': str(tmp_path / 'payload.tar.gz'), 'dest': '/opt/zdt-probe'}},
        {'ansible.builtin.systemd_service': {'name': 'systemd-journald', 'state': 'started'}},
    ]}])
    assert 'changed=5' in out, out[-3000:]
    assert inside(host, 'cat', '/etc/zdt-probe/copied', '/etc/zdt-probe/templated', '/opt/zdt-probe/hello.txt') == \
        'copied\nname=ch1\nhello from the archive\n'
    # Written to the host's upper layer, never to the machine.
    assert not os.path.exists('/etc/zdt-probe') and not os.path.exists('/opt/zdt-probe')
    assert os.path.isfile(os.path.join(host.upper, 'etc', 'zdt-probe', 'copied'))


def test_the_app_unit_hands_the_command_to_sh_unchanged_under_systemd(host, machine, tmp_path):
    """The role's unit, started by the host's systemd: quotes, backslashes, % and $ reach sh as written."""
    command = "/usr/bin/printf '%s|' \"q\\\"uote\" 'back\\slash' '50%' '$ZDT_COLOR' \"$ZDT_COLOR\" > /tmp/zdt-argv"
    zdt_app = {'name': 'quoting', 'artifact': str(tmp_path), 'command': command, 'user': 'root', 'base_dir': '/opt/quoting'}
    run_playbook(host, machine, tmp_path, [{'hosts': 'ch1', 'gather_facts': False, 'vars': {
        'zdt_app': zdt_app, 'app_release_version': '1', 'app_release_color': 'blue'}, 'tasks': [
        {'ansible.builtin.file': {'path': '/opt/quoting/blue', 'state': 'directory', 'mode': '0755'}},
        {'ansible.builtin.copy': {'content': 'ZDT_COLOR="blue"\n', 'dest': '/opt/quoting/blue/{{ item }}', 'mode': '0600'},
         'loop': ['env', 'secret.env']},
        {'ansible.builtin.file': {'path': '/opt/quoting/releases/1', 'state': 'directory', 'mode': '0755'}},
        {'ansible.builtin.include_role': {'name': 'zdt.bluegreen.app_release', 'tasks_from': 'unit'}},
        {'ansible.builtin.systemd_service': {'name': 'zdt-quoting-blue', 'state': 'started', 'daemon_reload': True}},
    ]}])
    host.command(['sh', '-c', 'for i in $(seq 50); do [ -s /tmp/zdt-argv ] && exit 0; sleep 0.1; done; exit 1'])
    assert inside(host, 'cat', '/tmp/zdt-argv') == 'q"uote|back\\slash|50%|$ZDT_COLOR|blue|'


def test_reboot_keeps_the_root_and_leaves_nothing_between(host, machine):
    first = host.pid()
    inside(host, 'sh', '-c', 'echo kept > /etc/zdt-reboot; echo gone > /run/zdt-reboot; echo gone > /tmp/zdt-reboot')
    result = host.poweroff()
    assert result['was_running'] and not result['killed'] and not alive(first)
    assert not os.path.exists(host.cgroup)
    assert host.boot(timeout=60)
    assert host.pid() != first
    assert inside(host, 'cat', '/etc/zdt-reboot') == 'kept\n'
    assert host.command(['ls', '/run/zdt-reboot', '/tmp/zdt-reboot'], check=False).returncode != 0
    assert os.path.exists(machine['sentinel'])


def test_poweroff_ends_every_process_removes_its_cgroups_and_destroy_the_overlay(host, machine):
    init = host.pid()
    with open(os.path.join(host.dir, 'launcher.json'), encoding='utf-8') as handle:
        launcher = json.load(handle)['pid']
    pids = [int(pid) for pid in inside(host, 'sh', '-c', 'ls /proc | grep -E "^[0-9]+$"').split()]
    assert 1 in pids and len(pids) > 3   # systemd, journald, dbus, logind, ...
    result = host.destroy()
    assert result['was_running'] and not result['killed']
    assert not alive(init) and not alive(launcher)
    assert not os.path.exists(host.dir) and not os.path.exists(host.cgroup)
    assert cgroup_dirs() == machine['cgroups']
    assert os.path.exists(machine['sentinel'])


def test_a_share_that_holds_the_state_directory_is_refused(machine):
    with pytest.raises(ContainedHostError, match='holds the state directory'):
        ContainedHost(machine['state'], 'bad-share', netns=machine['netns'], shares=['/var/tmp']).boot()
    assert not os.path.exists(os.path.join(machine['state'], 'bad-share'))


@pytest.mark.parametrize('case', ['machine-netns', 'tmp-not-tmpfs', 'var-tmp-not-fresh'])
def test_an_uncontained_launch_refuses_before_systemd_starts(machine, case, tmp_path):
    name = 'bad-' + case[:3]
    kwargs = {'netns': machine['netns'], 'shares': []}
    expected = {'machine-netns': "the net namespace is the machine's", 'tmp-not-tmpfs': '/tmp is ext4, not a tmpfs',
                'var-tmp-not-fresh': '/var/tmp is not fresh'}[case]
    if case == 'machine-netns':
        kwargs['netns'] = None
    elif case == 'tmp-not-tmpfs':
        kwargs['shares'] = ['/tmp']
    else:
        shared = tempfile.mkdtemp(prefix='zdt-share-', dir='/var/tmp')
        kwargs['shares'] = [shared]
    bad = ContainedHost(machine['state'], name, **kwargs)
    try:
        with pytest.raises(ContainedHostError) as failure:
            bad.boot(timeout=30)
    finally:
        if case == 'var-tmp-not-fresh':
            os.rmdir(shared)
    message = str(failure.value)
    assert 'launcher status 2' in message and 'refusing to start systemd' in message and expected in message, message
    assert 'starting systemd' not in bad.log_tail(100)
    assert bad.pid() is None and not os.path.exists(bad.cgroup)
    assert not [entry for entry in os.listdir(CGROUP_ROOT) if entry.startswith('zdt-contained-%s-' % name)]
    assert os.path.exists(machine['sentinel'])
    bad.destroy()
    assert not os.path.exists(bad.dir)
