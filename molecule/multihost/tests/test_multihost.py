"""After site.yml and upgrade.yml under load (twice) on namespace hosts: v2 serves through lb1
from both green hosts, schema contracted, nothing lost. HTTP checks run inside the client
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


def haproxy_stats():
    """{server: row} of HAProxy's `show stat`, read over lb1's admin socket."""
    return checks.haproxy_stats(os.path.join(HOSTS_DIR, 'lb1', 'haproxy', 'admin.sock'))


def test_hosts_are_namespaces_on_the_private_subnet():
    hosts = plan()
    assert sorted(hosts) == ['blue1', 'blue2', 'client', 'db', 'green1', 'green2', 'lb1']
    for host in hosts.values():
        assert host['address'].startswith('10.231.77.')
    # The root namespace has no address on the subnet and drops anything sent to it.
    assert '10.231.77.' not in subprocess.run(['ip', '-o', 'addr', 'show'], stdout=subprocess.PIPE, check=True,
                                              universal_newlines=True).stdout
    assert '10.231.77.0/24' in subprocess.run(['ip', 'route', 'show', 'type', 'blackhole'], stdout=subprocess.PIPE,
                                              check=True, universal_newlines=True).stdout


def test_v2_serves_through_the_load_balancer():
    lb_address = plan()['lb1']['address']
    for _request in range(10):
        assert probe_from('client', lb_address, LB_PORT) == {'status': 200, 'version': '2'}


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
