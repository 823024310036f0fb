"""Unit tests for the HAProxy runtime-API client (haproxy_runtime), against a fake CLI on a unix socket."""
import os
import socket
import threading
import time

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils import haproxy_runtime as hr

STATE_HEADER = ('# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight '
                'srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state '
                'srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port '
                'srv_check_addr srv_agent_addr srv_agent_port')
# captured from HAProxy 2.6.12: blue1 up+ready, green1 down+forced drain (status text says DOWN), blue2 forced maint
STATE_TEXT = ('1\n' + STATE_HEADER + '\n'
              '3 app 1 blue1 127.0.0.1 2 0 100 100 11 15 3 2 6 0 0 0 - 18001 - 0 0 - - 0\n'
              '3 app 2 green1 127.0.0.1 0 8 100 100 26 8 2 0 6 0 0 0 - 18002 - 0 0 - - 0\n'
              '3 app 3 blue2 127.0.0.1 0 1 7 100 26 8 2 0 14 0 0 0 - 18003 - 0 0 - - 0\n')
STAT_HEADER = ('# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,'
               'chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,'
               'check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,'
               'req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,'
               'agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,')


def stat_row(name, scur, qcur, status, health, **raw):
    """One show stat line; raw values (already CSV-encoded as HAProxy sends them) are put in as they are."""
    values = {'pxname': 'app', 'svname': name, 'qcur': str(qcur), 'scur': str(scur), 'status': status,
              'check_rise': '1', 'check_fall': '2', 'check_health': str(health)}
    values.update(raw)
    cols = STAT_HEADER[2:].split(',')
    return ','.join(values.get(c, '') for c in cols)


STAT_TEXT = '\n'.join([STAT_HEADER, stat_row('blue1', 3, 1, 'UP', 2), stat_row('green1', 0, 0, 'DOWN', 0),
                       stat_row('blue2', 0, 0, 'MAINT', 0), stat_row('BACKEND', 3, 1, 'UP', 0)]) + '\n'


# ---------------------------------------------------------------- parsing

def test_admin_state_from_bits():
    assert hr.admin_state_from_bits(0) == 'ready'
    assert hr.admin_state_from_bits(hr.SRV_ADMF_FDRAIN) == 'drain'
    assert hr.admin_state_from_bits(hr.SRV_ADMF_IDRAIN) == 'drain'
    assert hr.admin_state_from_bits(hr.SRV_ADMF_FMAINT) == 'maint'
    assert hr.admin_state_from_bits(hr.SRV_ADMF_IMAINT) == 'maint'
    assert hr.admin_state_from_bits(hr.SRV_ADMF_RMAINT) == 'maint'
    assert hr.admin_state_from_bits(hr.SRV_ADMF_FMAINT | hr.SRV_ADMF_FDRAIN) == 'maint'   # maint wins
    assert hr.admin_state_from_bits('12') == 'drain'   # as read from a state file


def test_configuration_and_fqdn_bits_alone_never_mean_maint():
    """0x04 (``disabled`` in the configuration) and 0x40 (FQDN changed) are markers HAProxy keeps after the server
    left maintenance; its own maintenance mask is 0x23."""
    assert hr.MAINT_MASK == 0x23
    assert hr.admin_state_from_bits(hr.SRV_ADMF_CMAINT) == 'ready'
    assert hr.admin_state_from_bits(hr.SRV_ADMF_HMAINT) == 'ready'
    assert hr.admin_state_from_bits(hr.SRV_ADMF_CMAINT | hr.SRV_ADMF_HMAINT) == 'ready'
    assert hr.admin_state_from_bits(hr.SRV_ADMF_CMAINT | hr.SRV_ADMF_FDRAIN) == 'drain'
    assert hr.admin_state_from_bits(hr.SRV_ADMF_CMAINT | hr.SRV_ADMF_FMAINT) == 'maint'   # still in config maintenance


# (srv_admin_state, show stat status) pairs read from HAProxy 2.6.12: `disabled` servers with and without checks,
# a server tracking a disabled one, and a server whose FQDN was set at runtime (resolving, then not resolving)
MEASURED = [
    (0, 'UP', 'ready'),
    (5, 'MAINT', 'maint'),                  # `disabled` at start, and after `state maint`
    (12, 'DRAIN', 'drain'),                 # `disabled`, then `state drain`
    (4, 'UP', 'ready'),                     # `disabled`, then `state ready`: serves
    (4, 'no check', 'ready'),               # the same without health checks
    (7, 'MAINT (via app/b1)', 'maint'),     # `disabled` and tracking a server in maint
    (28, 'DRAIN', 'drain'),                 # the tracker after `state drain`
    (23, 'MAINT (via app/b1)', 'maint'),
    (96, 'MAINT (resolution)', 'maint'),    # FQDN set at runtime and not resolving
    (64, 'UP', 'ready'),                    # FQDN set at runtime and resolving
    (72, 'DRAIN', 'drain'),
    (65, 'MAINT', 'maint'),
]


@pytest.mark.parametrize('bits,status,expected', MEASURED)
def test_admin_state_agrees_with_what_haproxy_2_6_showed(bits, status, expected):
    assert hr.admin_state_from_bits(bits) == expected
    assert (expected == 'maint') == status.startswith('MAINT')


def test_a_server_disabled_in_the_configuration_serves_once_ready():
    """Captured from HAProxy 2.6.12 (`server b1 ... check disabled` after `set server app/b1 state ready`, and the
    same server without checks after `state drain`)."""
    text = ('1\n' + STATE_HEADER + '\n'
            '3 app 2 b1 127.0.0.1 2 4 100 100 1 15 3 2 6 0 0 0 - 25914 - 0 0 - - 0\n'
            '4 nochk 2 b1 127.0.0.1 2 12 100 100 1 1 0 0 8 0 0 0 - 25914 - 0 0 - - 0\n'
            '5 off 2 b1 127.0.0.1 0 5 100 100 1 1 0 0 14 0 0 0 - 25914 - 0 0 - - 0\n')
    ready, drained, off = hr.parse_servers_state(text)
    assert ready['admin_state'] == 'ready' and drained['admin_state'] == 'drain' and off['admin_state'] == 'maint'
    server = hr.Server('app', 'b1', ready['srv_admin_state'], ready['srv_op_state'], 100, 100, check_health=2,
                       check_enabled=True, rise=1, fall=2)
    assert server.passing and server.settled and server.as_dict() == {'admin_state': 'ready', 'weight': 100}
    unchecked = hr.Server('nochk', 'b1', 4, hr.SRV_ST_RUNNING, 100, 100, check_enabled=False)
    assert unchecked.passing


def test_parse_servers_state_takes_admin_state_from_bits_not_status():
    rows = hr.parse_servers_state(STATE_TEXT)
    by_name = dict((r['srv_name'], r) for r in rows)
    assert by_name['blue1']['admin_state'] == 'ready'
    assert by_name['green1']['admin_state'] == 'drain'   # op state 0 (DOWN), still drain
    assert by_name['green1']['srv_op_state'] == 0
    assert by_name['blue2']['admin_state'] == 'maint'
    assert by_name['blue2']['srv_uweight'] == 7 and by_name['blue2']['srv_iweight'] == 100
    assert by_name['blue1']['be_name'] == 'app'


def test_parse_servers_state_rejects_other_formats():
    with pytest.raises(hr.HAProxyError):
        hr.parse_servers_state("Can't find backend.\n")
    with pytest.raises(hr.HAProxyError):
        hr.parse_servers_state('2\n' + STATE_HEADER + '\n')


def test_parse_stat_csv():
    rows = hr.parse_stat_csv(STAT_TEXT)
    assert [r['svname'] for r in rows] == ['blue1', 'green1', 'blue2', 'BACKEND']
    assert rows[0]['scur'] == '3' and rows[0]['qcur'] == '1' and rows[0]['status'] == 'UP'
    with pytest.raises(hr.HAProxyError):
        hr.parse_stat_csv('No such proxy.\n')


# HAProxy 2.6 quotes a field with a comma or a quote (csv_enc), doubling the quotes inside
QUOTED_DESC = '"Layer4 connection problem, info: ""Connection refused"""'
QUOTED_LAST_CHK = '"Connection refused, at initial connection step of tcp-check"'


def test_parse_stat_csv_keeps_quoted_fields_with_commas_whole():
    text = '\n'.join([STAT_HEADER,
                      stat_row('green1', 0, 0, 'DOWN', 0, check_desc=QUOTED_DESC, last_chk=QUOTED_LAST_CHK,
                               check_status='L4CON', check_rise='3', check_fall='5'),
                      stat_row('blue1', 4, 2, 'UP', 7, check_rise='2', check_fall='6')]) + '\n'
    rows = hr.parse_stat_csv(text)
    assert [r['svname'] for r in rows] == ['green1', 'blue1']
    green, blue = rows
    assert green['check_desc'] == 'Layer4 connection problem, info: "Connection refused"'
    assert green['last_chk'] == 'Connection refused, at initial connection step of tcp-check'
    assert (green['check_rise'], green['check_fall'], green['check_health']) == ('3', '5', '0')
    assert green['status'] == 'DOWN' and green['check_status'] == 'L4CON' and green['agent_desc'] == ''
    assert (blue['scur'], blue['qcur'], blue['check_rise'], blue['check_fall'], blue['check_health']) == ('4', '2', '2', '6', '7')
    assert set(green) == set(c for c in STAT_HEADER[2:].split(',') if c)


def test_servers_judge_health_with_a_quoted_check_description(fake):
    """rise/fall come from the right columns although an earlier field holds a comma."""
    stat = '\n'.join([STAT_HEADER, stat_row('blue1', 3, 1, 'UP', 2, check_desc=QUOTED_DESC, last_chk=QUOTED_LAST_CHK),
                      stat_row('green1', 0, 0, 'DOWN', 0, check_desc=QUOTED_DESC),
                      stat_row('blue2', 0, 0, 'MAINT', 0)]) + '\n'
    cli = fake({'show servers state app': STATE_TEXT, 'show stat app -1 -1': stat})
    with hr.RuntimeClient(cli.path, timeout=2) as client:
        servers = client.servers('app')
    blue1 = servers['blue1']
    assert (blue1.rise, blue1.fall, blue1.scur, blue1.qcur) == (1, 2, 3, 1)
    assert blue1.passing and blue1.settled


def test_write_state_file_into_a_missing_directory_is_a_clear_error(fake, tmp_path):
    cli = fake({'show servers state': STATE_TEXT})
    with hr.RuntimeClient(cli.path, timeout=2) as client:
        with pytest.raises(hr.HAProxyError, match='cannot write the server-state file'):
            hr.write_state_file(client, str(tmp_path / 'missing' / 'server-state'))


def test_parse_address():
    assert hr.parse_address('/run/haproxy.sock') == (socket.AF_UNIX, '/run/haproxy.sock')
    assert hr.parse_address('unix@/x.sock') == (socket.AF_UNIX, '/x.sock')
    assert hr.parse_address('ipv4@127.0.0.1:9999') == (socket.AF_INET, ('127.0.0.1', 9999))
    for bad in ('ipv4@127.0.0.1', 'ipv4@:80', 'ipv4@127.0.0.1:99999', 'ipv6@::1', ''):
        with pytest.raises(hr.HAProxyError):
            hr.parse_address(bad)


def test_names_cannot_inject_commands():
    client = hr.RuntimeClient('/nonexistent')
    for bad in ('app;shutdown sessions server app/x', 'a b', 'a\nb', ''):
        with pytest.raises(hr.HAProxyError):
            client.set_server_state(bad, 'blue1', 'drain')
    with pytest.raises(hr.HAProxyError):
        client.set_server_state('app', 'blue1', 'down')
    with pytest.raises(hr.HAProxyError):
        client.set_server_weight('app', 'blue1', 257)


# ---------------------------------------------------------------- over a socket

def test_several_commands_on_one_connection(fake):
    cli = fake({'show servers state app': STATE_TEXT.rstrip('\n') + '\n', 'show stat app -1 -1': STAT_TEXT,
                'set server app/green1 state ready': '', 'set server app/green1 weight 90': ''}, split=True)
    with hr.RuntimeClient(cli.path, timeout=2) as client:
        servers = client.servers('app')
        client.set_server_weight('app', 'green1', 90)
        client.set_server_state('app', 'green1', 'ready')
    # The fake server's thread reads the final 'quit' after the client has moved on: give it a moment.
    deadline = time.monotonic() + 5
    while cli.received[-1:] != ['quit'] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cli.connections == 1
    assert cli.received == ['prompt', 'show servers state app', 'show stat app -1 -1', 'set server app/green1 weight 90',
                            'set server app/green1 state ready', 'quit']
    assert servers['blue1'].admin_state == 'ready' and servers['blue1'].passing and servers['blue1'].scur == 3
    assert servers['blue1'].qcur == 1 and servers['blue1'].weight == 100
    assert servers['green1'].admin_state == 'drain' and not servers['green1'].passing and servers['green1'].check_enabled
    assert servers['blue2'].admin_state == 'maint' and servers['blue2'].weight == 7


@pytest.mark.parametrize('reply', ['No such server.', 'No such backend.', 'Permission denied',
                                   "'set server <srv> state' expects 'ready', 'drain' and 'maint'.",
                                   'Unknown command, but maybe one of the following ones is a better match:\n  help'])
def test_error_replies_raise_with_the_reply_text(fake, reply):
    cli = fake(lambda line: reply)
    with hr.RuntimeClient(cli.path, timeout=2) as client:
        with pytest.raises(hr.HAProxyCommandError) as err:
            client.set_server_state('app', 'nope', 'drain')
    assert err.value.reply == reply.strip()
    assert reply.splitlines()[0] in str(err.value)


def test_show_errors_raise(fake):
    cli = fake({'show servers state nope': "Can't find backend.\n", 'show stat nope -1 -1': 'No such proxy.\n',
                'show backend': 'Permission denied\n', 'shutdown sessions server app/x': 'No such server.\n'})
    with hr.RuntimeClient(cli.path, timeout=2) as client:
        with pytest.raises(hr.HAProxyCommandError, match="Can't find backend"):
            client.servers('nope')
        with pytest.raises(hr.HAProxyCommandError, match='No such proxy'):
            client.show_stat('nope')
        with pytest.raises(hr.HAProxyCommandError, match='Permission denied'):
            client.show_backends()
        with pytest.raises(hr.HAProxyCommandError, match='No such server'):
            client.shutdown_sessions('app', 'x')


def test_show_backend_and_info(fake):
    cli = fake({'show backend': '# name\napp\nother\n', 'show info': 'Name: HAProxy\nVersion: 2.6.12\nPid: 42\n'})
    with hr.RuntimeClient(cli.path, timeout=2) as client:
        assert client.show_backends() == ['app', 'other']
        assert client.show_info()['Pid'] == '42'


def test_timeout_on_a_silent_server(fake):
    cli = fake(lambda line: 'HANG')
    with hr.RuntimeClient(cli.path, timeout=0.3) as client:
        with pytest.raises(hr.HAProxyConnectionError, match='within 0.3s'):
            client.show_backends()


def test_connection_closed_mid_reply(fake):
    cli = fake(lambda line: None)
    with hr.RuntimeClient(cli.path, timeout=2) as client:
        with pytest.raises(hr.HAProxyConnectionError, match='closed the connection'):
            client.show_backends()


def test_bad_socket_path_is_a_clear_error(tmp_path):
    with pytest.raises(hr.HAProxyConnectionError, match='cannot connect to HAProxy socket .*nope.sock'):
        hr.RuntimeClient(str(tmp_path / 'nope.sock'), timeout=1).show_backends()


def test_tcp_socket():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(('127.0.0.1', 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def serve():
        conn, _peer = srv.accept()
        with conn:
            data = b''
            for count, reply in ((1, b'\n> '), (2, b'# name\napp\n\n> ')):
                while data.count(b'\n') < count:
                    data += conn.recv(100)
                conn.sendall(reply)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with hr.RuntimeClient('ipv4@127.0.0.1:%d' % port, timeout=2) as client:
        assert client.show_backends() == ['app']
    srv.close()


def test_write_state_file_is_atomic_and_loadable(fake, tmp_path):
    cli = fake({'show servers state': STATE_TEXT})
    path = tmp_path / 'server-state'
    path.write_text('old')
    with hr.RuntimeClient(cli.path, timeout=2) as client:
        hr.write_state_file(client, str(path))
    assert path.read_text() == STATE_TEXT
    assert sorted(os.listdir(str(tmp_path))) == ['server-state']   # no temp file left


def test_write_state_file_refuses_an_error_reply(fake, tmp_path):
    cli = fake({'show servers state': 'Permission denied\n'})
    path = tmp_path / 'server-state'
    path.write_text('old')
    with hr.RuntimeClient(cli.path, timeout=2) as client:
        with pytest.raises(hr.HAProxyCommandError):
            hr.write_state_file(client, str(path))
    assert path.read_text() == 'old'


def test_server_health_judgement():
    # rise 1, fall 2: fully up at health 2; HAProxy sets health = rise (1) when a server leaves maint
    up = hr.Server('app', 's', 0, hr.SRV_ST_RUNNING, 100, 100, check_health=2, check_enabled=True, rise=1, fall=2)
    assert up.passing and up.settled
    woken = hr.Server('app', 's', hr.SRV_ADMF_FDRAIN, hr.SRV_ST_RUNNING, 100, 100, check_health=1, check_enabled=True, rise=1, fall=2)
    assert not woken.passing and not woken.settled       # assumed up, not yet checked: wait before judging
    down = hr.Server('app', 's', 0, hr.SRV_ST_STOPPED, 100, 100, check_health=0, check_enabled=True, rise=1, fall=2)
    assert not down.passing and down.settled
    maint = hr.Server('app', 's', hr.SRV_ADMF_FMAINT, hr.SRV_ST_STOPPED, 100, 100, check_enabled=True, rise=1, fall=2)
    assert not maint.passing and maint.admin_state == 'maint'
    unchecked = hr.Server('app', 's', 0, hr.SRV_ST_RUNNING, 100, 100, check_enabled=False)
    assert unchecked.passing and unchecked.settled


def test_server_counters_per_server(fake):
    stat = '\n'.join([STAT_HEADER,
                      stat_row('blue1', 0, 0, 'UP', 2, hrsp_2xx='190', hrsp_5xx='10', eresp='1', econ='2', wretr='3',
                               wredis='1', req_tot='201', stot='40', hrsp_1xx='4', hrsp_other='5'),
                      stat_row('green1', 0, 0, 'DOWN', 0, econ='7'),
                      stat_row('BACKEND', 0, 0, 'UP', 0, hrsp_5xx='99')]) + '\n'
    cli = fake({'show stat app -1 -1': stat})
    with hr.RuntimeClient(cli.path, timeout=2) as client:
        every = client.server_counters('app')
        assert sorted(every) == ['blue1', 'green1']   # FRONTEND and BACKEND rows are not servers
        assert every['blue1'] == {'hrsp_1xx': 4, 'hrsp_2xx': 190, 'hrsp_3xx': 0, 'hrsp_4xx': 0, 'hrsp_5xx': 10, 'hrsp_other': 5,
                                  'eresp': 1, 'econ': 2, 'wretr': 3, 'wredis': 1, 'req_tot': 201, 'stot': 40, 'mode': ''}
        assert list(client.server_counters('app', ['green1'])) == ['green1']
        assert client.server_counters('app', ['green1'])['green1']['econ'] == 7
        with pytest.raises(hr.HAProxyCommandError, match=r'No such server: green9 \(the backend has: blue1, green1\)'):
            client.server_counters('app', ['green9', 'blue1'])


def test_server_counters_refuse_a_reply_without_the_counter_columns(fake):
    cli = fake({'show stat app -1 -1': '# pxname,svname,scur,status,\napp,blue1,0,UP,\n'})
    with hr.RuntimeClient(cli.path, timeout=2) as client:
        with pytest.raises(hr.HAProxyError, match='no column hrsp_1xx, hrsp_2xx'):
            client.server_counters('app')
