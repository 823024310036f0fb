"""After site.yml and upgrade.yml under load (twice) on namespace hosts: v2 serves through lb1 and lb2
from both green hosts, schema contracted, nothing lost. Before that, an upgrade lost lb2's admin socket
mid-switch: it failed naming lb2, and the next run put both load balancers in step. HTTP checks run inside the client
namespace (ip netns exec); the database and HAProxy are read over their unix sockets (files)."""
import json
import os
import subprocess

from zdt_lab import checks

testinfra_hosts = ['localhost']

EPHEMERAL = os.environ['MOLECULE_EPHEMERAL_DIRECTORY']
HOSTS_DIR = os.path.join(checks.SANDBOX, 'hosts')
checks.DB_SOCKET = os.path.join(HOSTS_DIR, 'db', 'mariadb', 'mysqld.sock')
APP_PORT = 8080
LB_PORT = 8000


def plan():
    with open(os.path.join(EPHEMERAL, 'netns', 'hosts.json'), encoding='utf-8') as handle:
        return json.load(handle)


def probe_from(client, host, port, path='/health'):
    """GET host:port/path from inside the namespace of `client`."""
    return checks.probe_in_netns(plan()[client]['netns'], host, port, path)


def admin_socket(lb):
    return os.path.join(HOSTS_DIR, lb, 'haproxy', 'admin.sock')


def admin_command(lb, command):
    """One command on a load balancer's admin socket (a file: no network)."""
    return checks.haproxy_command(admin_socket(lb), command)


def haproxy_stats(lb='lb1'):
    """{server: row} of HAProxy's `show stat`, read over the load balancer's admin socket."""
    return checks.haproxy_stats(admin_socket(lb))


def test_hosts_are_namespaces_on_the_private_subnet():
    hosts = plan()
    assert sorted(hosts) == ['blue1', 'blue2', 'client', 'db', 'green1', 'green2', 'lb1', 'lb2']
    for host in hosts.values():
        assert host['address'].startswith('10.231.77.')
    # The root namespace has no address on the subnet and drops anything sent to it.
    assert '10.231.77.' not in subprocess.run(['ip', '-o', 'addr', 'show'], stdout=subprocess.PIPE, check=True,
                                              universal_newlines=True).stdout
    assert '10.231.77.0/24' in subprocess.run(['ip', 'route', 'show', 'type', 'blackhole'], stdout=subprocess.PIPE,
                                              check=True, universal_newlines=True).stdout


def test_v2_serves_through_both_load_balancers():
    for lb in ('lb1', 'lb2'):
        for _request in range(10):
            assert probe_from('client', plan()[lb]['address'], LB_PORT) == {'status': 200, 'version': '2'}


def servers_state(lb):
    """{server: (srv_admin_state, srv_uweight)} of backend app."""
    rows = [line.split() for line in admin_command(lb, 'show servers state app').splitlines()]
    rows = [row for row in rows if len(row) > 7 and row[0].isdigit()]   # the first line is the format version
    return {row[3]: (row[6], row[7]) for row in rows}


def test_the_upgrade_that_lost_lb2_mid_switch_failed_naming_it_and_both_are_in_step_now():
    with open(os.path.join(checks.SANDBOX, 'fault-upgrade.log'), encoding='utf-8') as handle:
        log = ' '.join(handle.read().split())
    assert 'the step to green 100 % failed: the switch failed on lb2' in log and 'Permission denied' in log
    assert 'Put back: lb1 to green 50 %, lb2 to green 50 %' in log
    assert 'NOT rolled back on load balancer(s) lb2' in log
    # the next run put them in step: green serving at the same weights on both, blue in maint (srv_admin_state 1:
    # forced maint, 0: ready; a server in maint keeps whatever weight it had, which sends nothing)
    for lb in ('lb1', 'lb2'):
        state = servers_state(lb)
        assert {name: s[0] for name, s in state.items()} == {'blue1': '1', 'blue2': '1', 'green1': '0', 'green2': '0'}, lb
        assert state['green1'][1] == state['green2'][1] == '100', (lb, state)


def test_reads_through_lb2_saw_no_failure():
    import glob  # pylint: disable=import-outside-toplevel
    reports = []
    for path in sorted(glob.glob(os.path.join(checks.SANDBOX, 'reads-lb2-*.json'))):
        with open(path, encoding='utf-8') as handle:
            reports.append(json.load(handle))
    assert len(reports) == 2   # converge and the idempotence run
    for report in reports:
        assert report['requests'] > 0 and report['failed'] == 0, report.get('failures')
    assert set(reports[0]['versions']) == {'1', '2'}


def test_new_color_hosts_serve_v2_and_old_color_hosts_are_stopped():
    hosts = plan()
    for name in ('green1', 'green2'):
        assert probe_from('client', hosts[name]['address'], APP_PORT) == {'status': 200, 'version': '2'}
    for name in ('blue1', 'blue2'):
        assert 'error' in probe_from('client', hosts[name]['address'], APP_PORT)


def test_every_app_host_served_through_the_load_balancer():
    """HAProxy's counters on lb1 (kept since its start: no reload happened): the servers are the
    app hosts' namespace addresses, and each host of a color took its share of the load."""
    hosts = plan()
    stats = haproxy_stats()
    reports = checks.load_reports()
    for name in ('blue1', 'blue2', 'green1', 'green2'):
        assert stats[name]['addr'] == '%s:%d' % (hosts[name]['address'], APP_PORT), stats[name]
        assert int(stats[name]['hrsp_2xx']) > 0, stats[name]
    for name in ('green1', 'green2'):
        assert stats[name]['status'].startswith('UP'), stats[name]
        # The idempotence run's load all went to v2: each green host answered a fair part of it.
        assert int(stats[name]['hrsp_2xx']) >= 0.2 * reports[-1]['requests'], (stats[name]['hrsp_2xx'], reports[-1]['requests'])


def test_apps_reach_the_database_over_the_db_namespace_address():
    db_address = plan()['db']['address']
    sql = "SELECT SUBSTRING_INDEX(host, ':', 1) FROM information_schema.processlist WHERE user = 'zdt'"
    clients = {row[0] for row in checks.db_query(sql)}
    assert {plan()[name]['address'] for name in ('green1', 'green2')} <= clients
    assert db_address not in clients


def test_schema_is_contracted():
    assert 'address_line_1' not in checks.columns('users')
    assert checks.columns('addresses') == ['id', 'user_id', 'address_line_1', 'address_line_2']
    indexes = {row[2] for row in checks.db_query('SHOW INDEX FROM addresses')}
    assert 'addresses_user' in indexes and 'addresses_user_id' not in indexes


def test_no_sync_trigger_is_left():
    assert checks.zdt_triggers() == ()


def test_no_failed_request_and_no_lost_write():
    checks.assert_upgrade_reports_clean()
