"""The production path on contained systemd hosts, after site.yml and upgrade.yml under load: the
generated units run both colors and HAProxy; then, in this order, a hitless HAProxy reload through its unit under
keep-alive load, a kill -9 of the live color's process (systemd restarts it; the failed requests are counted), and
a reboot of every systemd host (the live color serves again, the stopped one stays stopped, HAProxy keeps the
switched server states, a rerun of upgrade.yml changes nothing).

Traffic comes from the client namespace only (ip netns exec); HAProxy's admin socket is read through its host's
root (/proc/<PID 1>/root/...); commands inside a host run through nsenter (zdt_lab.contained_host).
"""
import json
import os
import re
import subprocess
import sys
import time

from zdt_lab import checks
from zdt_lab.contained_host import ContainedHost

testinfra_hosts = ['localhost']

EPHEMERAL = os.environ['MOLECULE_EPHEMERAL_DIRECTORY']
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(os.path.dirname(SCENARIO))
CONTAINED = os.path.join(EPHEMERAL, 'contained')
CONTAINED_TMP = os.path.join(EPHEMERAL, 'ansible-tmp')
DB_DIR = os.path.join(checks.SANDBOX, 'hosts', 'sys-db')
checks.DB_SOCKET = os.path.join(DB_DIR, 'mariadb', 'mysqld.sock')
APP_PORT = 8080
LB_PORT = 8000
UNIT = {'blue': 'zdt-zdt-sample-blue.service', 'green': 'zdt-zdt-sample-green.service'}
HOSTS = {'blue': 'sys-blue1', 'green': 'sys-green1'}
BIN = os.path.dirname(sys.executable)


def plan():
    with open(os.path.join(EPHEMERAL, 'netns', 'hosts.json'), encoding='utf-8') as handle:
        return json.load(handle)


def host(name):
    return ContainedHost(CONTAINED, name, netns='zdt-' + name, shares=[CONTAINED_TMP])


def probe(name, port, path='/health'):
    """GET from the client namespace to host `name`'s address."""
    return checks.probe_in_netns(plan()['sys-client']['netns'], plan()[name]['address'], port, path)


def unit_show(name, unit, *props):
    out = host(name).command(['systemctl', 'show', unit, '-p', ','.join(props)]).stdout
    return dict(line.split('=', 1) for line in out.splitlines() if '=' in line)


def admin_socket():
    """HAProxy's admin socket on sys-lb1, through that host's root."""
    return '/proc/%d/root/run/zdt-haproxy/admin.sock' % host('sys-lb1').pid()


def server_states():
    """{server: (operational state, admin state, user weight)} from `show servers state`."""
    lines = [line for line in checks.haproxy_command(admin_socket(), 'show servers state app').splitlines()[1:]
             if line and not line.startswith('#')]
    return {fields[3]: (fields[5], fields[6], fields[7]) for fields in (line.split() for line in lines)}


def server_status(name):
    return checks.haproxy_stats(admin_socket())[name]['status']


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError('%s: not within %ss' % (what, timeout))


def playbook(name):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO_ROOT, '.collections'), ZDT_SANDBOX_DIR=checks.SANDBOX,
               ZDT_NETNS_DIR=os.path.join(EPHEMERAL, 'netns'), ZDT_CONTAINED_DIR=CONTAINED, ZDT_CONTAINED_TMP=CONTAINED_TMP,
               MOLECULE_PROJECT_DIRECTORY=REPO_ROOT, PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', os.path.join(SCENARIO, 'inventory'),
                           os.path.join(REPO_ROOT, 'playbooks', name)], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


# ---- the upgrade ----

def test_no_failed_request_and_no_lost_write():
    checks.assert_upgrade_reports_clean(runs=1)


def test_both_colors_and_haproxy_run_from_the_generated_units():
    green = unit_show(HOSTS['green'], UNIT['green'], 'ActiveState', 'UnitFileState', 'FragmentPath', 'MainPID')
    assert green['ActiveState'] == 'active' and green['UnitFileState'] == 'enabled'
    assert green['FragmentPath'] == '/etc/systemd/system/' + UNIT['green']
    # The command reached the process as written in zdt_app.command (sh exec'd it).
    cmdline = host(HOSTS['green']).command(['cat', '/proc/%s/cmdline' % green['MainPID']]).stdout.split('\0')[:-1]
    assert cmdline == ['/usr/bin/python3', 'app.py'], cmdline
    blue = unit_show(HOSTS['blue'], UNIT['blue'], 'ActiveState', 'UnitFileState')
    assert blue == {'ActiveState': 'inactive', 'UnitFileState': 'disabled'}
    lb = unit_show('sys-lb1', 'zdt-haproxy.service', 'ActiveState', 'UnitFileState', 'Type')
    assert lb == {'ActiveState': 'active', 'UnitFileState': 'enabled', 'Type': 'notify'}
    # Nothing ran under the collection's supervisor.
    for name in (HOSTS['blue'], HOSTS['green']):
        assert host(name).command(['sh', '-c', 'ls /opt/zdt-sample/run']).stdout == ''
    assert probe('sys-lb1', LB_PORT) == {'status': 200, 'version': '2'}
    assert probe(HOSTS['green'], APP_PORT) == {'status': 200, 'version': '2'}
    assert 'error' in probe(HOSTS['blue'], APP_PORT)


# ---- HAProxy reload through its unit ----

def test_haproxy_reload_through_the_unit_is_hitless_under_keep_alive_load():
    """wrk (keep-alive, 20 connections, 7 s) through sys-lb1 while `systemctl reload` runs three times."""
    lb = host('sys-lb1')
    main_pid = unit_show('sys-lb1', 'zdt-haproxy.service', 'MainPID')['MainPID']
    url = 'http://%s:%d/health' % (plan()['sys-lb1']['address'], LB_PORT)
    wrk = subprocess.Popen(['ip', 'netns', 'exec', plan()['sys-client']['netns'], 'wrk', '-t2', '-c20', '-d7s', '--latency', url],
                           stdout=subprocess.PIPE, universal_newlines=True)
    reloads = []
    for _round in range(3):
        time.sleep(1.5)
        started = time.monotonic()
        lb.command(['systemctl', 'reload', 'zdt-haproxy.service'])
        reloads.append(round(time.monotonic() - started, 2))
    out, _err = wrk.communicate(timeout=60)
    print(out)
    print('reloads through systemctl reload (s):', reloads)
    assert max(reloads) < 5, reloads
    requests = int(re.search(r'(\d+) requests in', out).group(1))
    assert requests > 1000, out
    assert 'Socket errors' not in out, out
    assert 'Non-2xx' not in out, out
    # The same master (re-executed, never restarted): one new worker per reload, the unit still active.
    after = unit_show('sys-lb1', 'zdt-haproxy.service', 'MainPID', 'ActiveState', 'NRestarts')
    assert after == {'MainPID': main_pid, 'ActiveState': 'active', 'NRestarts': '0'}


# ---- a crash of the live color ----

def test_a_killed_live_process_is_restarted_by_systemd_and_back_in_haproxy():
    green = HOSTS['green']
    before = unit_show(green, UNIT['green'], 'MainPID', 'NRestarts')
    report = os.path.join(EPHEMERAL, 'crash-load.json')
    load = subprocess.Popen(['ip', 'netns', 'exec', plan()['sys-client']['netns'], sys.executable,
                             os.path.join(REPO_ROOT, 'tools', 'loadgen.py'), 'run', '--url',
                             'http://%s:%d' % (plan()['sys-lb1']['address'], LB_PORT), '--rate', '50', '--duration', '10',
                             '--max-requests', '600', '--report', report, '--verify', '--db-socket', checks.DB_SOCKET,
                             '--db-user', 'root', '--db-name', 'app'],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    time.sleep(3)
    killed_at = time.monotonic()
    host(green).command(['kill', '-9', before['MainPID']])
    wait_for(lambda: unit_show(green, UNIT['green'], 'NRestarts')['NRestarts'] == str(int(before['NRestarts']) + 1),
             15, 'systemd restarted the service')
    after = unit_show(green, UNIT['green'], 'MainPID', 'ActiveState')
    assert after['MainPID'] != before['MainPID'] and after['ActiveState'] == 'active'
    wait_for(lambda: server_status(green).startswith('UP'), 20, "HAProxy's check sees %s up" % green)
    recovered = time.monotonic() - killed_at
    out, _err = load.communicate(timeout=60)
    with open(report, encoding='utf-8') as handle:
        result = json.load(handle)
    print(out)
    print('kill -9 of the live color: %d failed requests of %d (%s), back in HAProxy after %.1f s'
          % (result['failed'], result['requests'], result['failures'], recovered))
    assert result['requests'] > 200
    # Only the requests of the outage fail: the service answered again before the load ended.
    assert result['failed'] < result['requests'] / 2
    assert result['verify']['lost_writes'] == 0, result['verify']['lost']


# ---- a reboot of every systemd host ----

def test_a_reboot_brings_the_live_color_back_and_keeps_the_switch():
    states = server_states()
    assert states['sys-green1'][1:] == ('0', '100') and states['sys-blue1'][1] != '0', states
    for name in ('sys-lb1', 'sys-blue1', 'sys-green1'):
        result = host(name).poweroff()
        assert result['was_running'] and not result['killed'], (name, result)
        assert not os.path.exists(host(name).cgroup)
    for name in ('sys-lb1', 'sys-blue1', 'sys-green1'):
        assert host(name).boot(timeout=60)
    # At boot: the enabled units only. HAProxy reads the switched states from its state file.
    assert unit_show(HOSTS['green'], UNIT['green'], 'ActiveState')['ActiveState'] == 'active'
    assert unit_show(HOSTS['blue'], UNIT['blue'], 'ActiveState', 'UnitFileState') == \
        {'ActiveState': 'inactive', 'UnitFileState': 'disabled'}
    wait_for(lambda: server_status('sys-green1').startswith('UP'), 30, 'green back in HAProxy')
    after = server_states()
    assert {name: state[1:] for name, state in after.items()} == {name: state[1:] for name, state in states.items()}
    for _request in range(5):
        assert probe('sys-lb1', LB_PORT) == {'status': 200, 'version': '2'}
    assert 'error' in probe(HOSTS['blue'], APP_PORT)


def test_upgrade_after_the_reboot_changes_nothing():
    out = playbook('upgrade.yml')
    recap = re.findall(r'^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0', out, re.M)
    assert len(recap) == 4 and all(changed == '0' for _host, changed in recap), (recap, out[-4000:])
    assert probe('sys-lb1', LB_PORT) == {'status': 200, 'version': '2'}
