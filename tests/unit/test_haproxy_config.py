"""Unit tests for the checks of a user's own haproxy.cfg (haproxy_config)."""
from ansible_collections.zdt.bluegreen.plugins.module_utils import haproxy_config as hc

SERVERS = [{'name': 'blue1', 'address': '10.0.0.11', 'port': 8000}, {'name': 'green1', 'address': '10.0.0.21', 'port': 8000}]
USER_CFG = '''\
global
    log /dev/log local0
    stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners
    server-state-file /var/lib/haproxy/state

defaults
    mode http
    log global
    load-server-state-from-file global

frontend www
    bind :80
    default_backend app

backend static   # other backends are left alone
    server s1 10.0.0.5:80

backend app
    balance roundrobin
    server blue1 10.0.0.11:8000 check
    server green1 10.0.0.21:8000 check disabled
'''


def check(text, **kw):
    args = dict(backend='app', servers=SERVERS, admin_socket='/run/haproxy/admin.sock', state_file='/var/lib/haproxy/state')
    args.update(kw)
    return hc.check(hc.parse(text, '/etc/haproxy/haproxy.cfg'), **args)


def test_a_complete_user_config_passes_and_needs_no_extra_file():
    result = check(USER_CFG)
    assert result['problems'] == [] and result['extra'] == []
    assert result['servers']['green1'] == 'server green1 10.0.0.21:8000 check disabled'
    assert '\nglobal\n' not in hc.extra_config([]) and all(l.startswith('#') for l in hc.extra_config([]).splitlines())


def test_missing_global_settings_go_to_the_separate_file():
    text = USER_CFG.replace('    stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners\n', '')
    text = text.replace('    server-state-file /var/lib/haproxy/state\n', '')
    result = check(text)
    assert result['problems'] == []
    assert result['extra'] == ['stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners',
                               'server-state-file /var/lib/haproxy/state']
    assert hc.extra_config(result['extra']).endswith('global\n    stats socket /run/haproxy/admin.sock mode 600 level admin '
                                                     'expose-fd listeners\n    server-state-file /var/lib/haproxy/state\n')


def test_a_stats_socket_below_level_admin_is_refused_naming_its_line():
    text = USER_CFG.replace('mode 600 level admin expose-fd listeners', 'mode 600')
    problems = check(text)['problems']
    assert problems == ['/etc/haproxy/haproxy.cfg line 3: the stats socket /run/haproxy/admin.sock is at level user; the '
                        'switch needs level admin: add "level admin" to that line (stats socket /run/haproxy/admin.sock '
                        'mode 600 level admin)']
    # a socket at another path is theirs: ours is added next to it
    assert check(USER_CFG, admin_socket='/run/zdt/admin.sock')['extra'][0].startswith('stats socket /run/zdt/admin.sock')


def test_a_missing_server_is_refused_naming_the_line_to_add():
    servers = SERVERS + [{'name': 'green2', 'address': '10.0.0.22', 'port': 8000}]
    assert check(USER_CFG, servers=servers)['problems'] == [
        'backend app (/etc/haproxy/haproxy.cfg line 18) has no server green2: add the line "server green2 10.0.0.22:8000 check"']


def test_a_server_at_another_address_or_not_in_the_inventory_is_refused():
    text = USER_CFG.replace('server blue1 10.0.0.11:8000', 'server blue1 10.0.0.99:8000') + '    server old1 10.0.0.7:8000\n'
    problems = check(text)['problems']
    assert problems == ['backend app, line 20: server blue1 is at 10.0.0.99:8000, the inventory says 10.0.0.11:8000: '
                        'change it to "server blue1 10.0.0.11:8000 check"',
                        'backend app, line 22: server old1 is no app host of the inventory (it would take traffic '
                        'whichever color is live): remove it, or add the host to a color\'s group']


def test_the_server_state_file_must_be_loaded_and_be_the_switchs():
    text = USER_CFG.replace('    load-server-state-from-file global\n', '')
    assert check(text)['problems'] == ['backend app (/etc/haproxy/haproxy.cfg line 17) does not load the server-state file: '
                                       'add "load-server-state-from-file global" to it or to its defaults section']
    # in the backend itself is as good
    text2 = text.replace('    balance roundrobin\n', '    balance roundrobin\n    load-server-state-from-file global\n')
    assert check(text2)['problems'] == []
    # only the defaults section before the backend counts (a later one applies to later proxies)
    text3 = text + 'defaults\n    load-server-state-from-file global\n'
    assert 'does not load the server-state file' in check(text3)['problems'][0]
    text4 = USER_CFG.replace('load-server-state-from-file global', 'load-server-state-from-file local')
    assert 'must be "load-server-state-from-file global"' in check(text4)['problems'][0]
    problems = check(USER_CFG, state_file='/var/lib/zdt/state')['problems']
    assert problems == ['/etc/haproxy/haproxy.cfg line 4: server-state-file is /var/lib/haproxy/state, but the switch writes '
                        '/var/lib/zdt/state: set load_balancer_state_file to /var/lib/haproxy/state (or change that line '
                        'to "server-state-file /var/lib/zdt/state")']


def test_a_missing_backend_names_the_lines_to_add():
    problems = check(USER_CFG, backend='shop')['problems']
    assert problems == ['no backend shop in the configuration (it has: backend static, backend app); add it with one server '
                        'line per app host: server blue1 10.0.0.11:8000 check; server green1 10.0.0.21:8000 check']


def test_named_defaults_and_listen_sections():
    text = ('global\n  stats socket /s level admin\n  server-state-file /st\ndefaults base\n'
            '  load-server-state-from-file global\ndefaults other\n  mode http\n'
            'listen app from base\n  bind :80\n  server blue1 10.0.0.11:8000 check\n  server green1 10.0.0.21:8000 check\n')
    assert check(text, admin_socket='/s', state_file='/st')['problems'] == []
    assert check(text.replace('from base', 'from other'), admin_socket='/s', state_file='/st')['problems']
