"""haproxy_stats and haproxy_error_rate against real HAProxy 2.6 processes: the sandbox load balancer and a second
one over the same Python backends, green1 of backend ``flaky`` answering 500 to one request in twenty."""
import http.client
import os
import shutil
import tempfile

import pytest

from zdt_lab.sandbox import Sandbox

from ansible_collections.zdt.bluegreen.plugins.module_utils import haproxy_master as hm

COLORS = {'blue': ['blue1'], 'green': ['green1']}


class SecondLB:
    """A second HAProxy (own sandbox directory, sockets and ports) with the flaky backend over the same servers, and
    a stats socket at level user besides the admin one: the counters need no more."""

    def __init__(self, lb):
        self.stack = Sandbox(tempfile.mkdtemp(prefix='zdt-it-lb2-'), preferred_ports={})
        self.hp = self.stack.haproxy
        self.admin_socket = self.hp.stats_socket
        self.user_socket = os.path.join(self.hp.dir, 'user.sock')
        config = self.hp.render_config(backends={'flaky': lb.backends['flaky']})
        self.config = config.replace('    stats timeout 30s\n', '    stats timeout 30s\n    stats socket %s mode 600 level user\n'
                                     % self.user_socket)
        self.port = self.hp.frontend_port


@pytest.fixture(scope='module')
def second_lb(lb):
    second = SecondLB(lb)
    try:
        second.hp.start(config_text=second.config)
        yield second
    finally:
        second.stack.stop_all()
        shutil.rmtree(second.stack.root, ignore_errors=True)


def stats(run_module, socket, label=None, check_mode=False, **kw):
    args = {'socket': socket, 'backend': 'flaky', 'servers': ['green1']}
    if label:
        args['label'] = label
    args.update(kw)
    args = dict((k, v) for k, v in args.items() if v is not None)
    result = run_module('haproxy_stats', args, check_mode=check_mode)
    assert not result.get('failed'), result
    return result


def gate(run_module, before, after, **kw):
    args = {'before': before, 'after': after}
    args.update(kw)
    return run_module('haproxy_error_rate', args)


def green_only(run_module, socket):
    result = run_module('haproxy_swap', {'socket': socket, 'backend': 'flaky', 'colors': COLORS, 'active': 'green'})
    assert not result.get('failed'), result


def send(port, count, path='/'):
    """count requests one after the other on one keep-alive connection: {status: n}."""
    seen = {}
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    try:
        for _request in range(count):
            conn.request('GET', path)
            resp = conn.getresponse()
            resp.read()
            seen[resp.status] = seen.get(resp.status, 0) + 1
            if resp.will_close:
                conn.close()
                conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    finally:
        conn.close()
    return seen


def test_counters_of_a_backend(lb, run_module):
    lb.reset('flaky')
    before = stats(run_module, lb.socket, servers=None)
    assert sorted(before['servers']) == ['blue1', 'green1'] and before['changed'] is False
    assert before['backend'] == 'flaky' and before['pid'] in lb.worker_pids() and before['started'] > 0
    assert before['label'] == '%s:%s' % (os.uname()[1], lb.socket)
    assert before['servers']['green1']['mode'] == 'http'
    seen = send(lb.frontends['flaky'], 40)   # roundrobin: 20 each
    after = stats(run_module, lb.socket, servers=None, check_mode=True)   # a read: check mode reads the same way
    delta = dict((name, dict((k, after['servers'][name][k] - before['servers'][name][k])
                             for k in ('hrsp_2xx', 'hrsp_5xx', 'responses', 'errors', 'req_tot')))
                 for name in ('blue1', 'green1'))
    assert delta['blue1'] == {'hrsp_2xx': 20, 'hrsp_5xx': 0, 'responses': 20, 'errors': 0, 'req_tot': 20}
    assert delta['green1']['responses'] == 20 and delta['green1']['hrsp_5xx'] == seen.get(500, 0) == 1
    assert after['total']['responses'] - before['total']['responses'] == 40
    by_color = stats(run_module, lb.socket, servers=None, colors=COLORS, color='blue')
    assert list(by_color['servers']) == ['blue1']


def test_one_request_in_twenty_failing_on_two_load_balancers(lb, second_lb, run_module):
    """400 requests to green1 through two load balancers, green1 answering 500 to one in twenty: a rate of exactly
    5 % summed over both, judged against 0 %, 5 % and 4 %."""
    lb.reset('flaky')
    green_only(run_module, lb.socket)
    green_only(run_module, second_lb.admin_socket)
    before = [stats(run_module, lb.socket, 'lb1'), stats(run_module, second_lb.user_socket, 'lb2')]
    seen = {}
    for _round in range(10):   # interleaved, 20 at a time on each load balancer
        for port in (lb.frontends['flaky'], second_lb.port):
            for status, count in send(port, 20).items():
                seen[status] = seen.get(status, 0) + count
    assert seen == {200: 380, 500: 20}
    after = [stats(run_module, second_lb.user_socket, 'lb2'), stats(run_module, lb.socket, 'lb1')]
    failed = gate(run_module, before, after)
    assert failed['failed'] and failed['outcome'] == 'fail' and failed['changed'] is False, failed
    assert (failed['errors'], failed['requests'], failed['rate']) == (20, 400, 0.05)
    assert failed['counts'] == {'hrsp_5xx': 20, 'eresp': 0, 'econ': 0, 'responses': 400}
    assert failed['load_balancers']['lb1']['requests'] == failed['load_balancers']['lb2']['requests'] == 200
    assert failed['msg'] == ('error rate 5.00 % is above the allowed 0.00 %: 20 errors in 400 requests of green1 on 2 load '
                             'balancers (20 5xx answers, 0 response errors, 0 connection errors)')
    passed = gate(run_module, before, after, max_error_rate=0.05)
    assert not passed.get('failed') and passed['outcome'] == 'pass' and passed['passed'] is True, passed
    assert gate(run_module, before, after, max_error_rate=0.04)['outcome'] == 'fail'
    assert gate(run_module, before[:1], after[1:], max_error_rate=0.05)['requests'] == 200   # one load balancer


def test_response_errors_count_and_too_few_requests_are_said(lb, run_module):
    lb.reset('flaky')
    green_only(run_module, lb.socket)
    before = [stats(run_module, lb.socket, 'lb1')]
    idle = gate(run_module, before, [stats(run_module, lb.socket, 'lb1')])
    assert not idle.get('failed') and idle['outcome'] == 'too_few' and idle['passed'] is False, idle
    assert 'too few requests to judge the error rate: 0 < minimum 20' in idle['msg']
    assert idle['msg'] in str(idle.get('warnings')), idle
    strict = gate(run_module, before, [stats(run_module, lb.socket, 'lb1')], on_too_few='fail')
    assert strict['failed'] and strict['outcome'] == 'too_few', strict
    # the backend closes without an answer: HAProxy answers 502 and counts a response error, no hrsp_5xx
    assert [lb.get('/?drop=1', backend='flaky') for _request in range(3)] == [(502, None)] * 3
    after = [stats(run_module, lb.socket, 'lb1')]
    result = gate(run_module, before, after, max_error_rate=0.1)
    assert result['failed'] and result['outcome'] == 'fail', result   # 3 errors > 10 % of the minimum of 20
    assert result['counts'] == {'hrsp_5xx': 0, 'eresp': 3, 'econ': 0, 'responses': 0}
    assert result['msg'].startswith('3 errors in only 3 requests of green1 on 1 load balancer (0 5xx answers, 3 response '
                                    'errors, 0 connection errors)'), result['msg']


def test_counters_that_restarted_with_a_reload_fail_the_gate(lb, run_module):
    lb.reset('flaky')
    before = [stats(run_module, lb.socket, 'lb1')]
    send(lb.frontends['flaky'], 40)
    old = lb.worker_pids()
    hm.MasterClient(lb.hp.master_socket, timeout=5).reload(timeout=15)
    after = [stats(run_module, lb.socket, 'lb1')]
    result = gate(run_module, before, after, max_error_rate=1.0)
    assert result['failed'] and result['outcome'] == 'reset' and result['rate'] is None, result
    assert 'lb1 (HAProxy worker pid %d -> %d)' % (old[0], after[0]['pid']) in result['msg']


@pytest.mark.parametrize('override,needle', [
    ({'backend': 'nope'}, 'No such proxy'),
    ({'servers': ['green9']}, 'No such server: green9 (the backend has: blue1, green1)'),
    ({'socket': '/nonexistent/admin.sock'}, 'cannot connect to HAProxy socket /nonexistent/admin.sock'),
    ({'colors': COLORS, 'color': 'red', 'servers': None}, "color 'red' is not one of the colors"),
    ({'timeout': -1}, 'timeout must be at least 0'),
])
def test_stats_clear_errors(lb, run_module, override, needle):
    args = {'socket': lb.socket, 'backend': 'flaky', 'servers': ['green1']}
    args.update(override)
    args = dict((k, v) for k, v in args.items() if v is not None)
    result = run_module('haproxy_stats', args)
    assert result.get('failed') and needle in result['msg'], result


@pytest.mark.parametrize('override,needle', [
    ({'after': [{'skipped': True, 'changed': False}]}, 'after[0] is not a haproxy_stats result'),
    ({'max_error_rate': 2}, 'max_error_rate must be at most 1, got 2.0'),
    ({'min_requests': 0}, 'min_requests must be at least 1, got 0'),
])
def test_gate_clear_errors(lb, run_module, override, needle):
    snapshot = stats(run_module, lb.socket, 'lb1')
    args = {'before': [snapshot], 'after': [snapshot]}
    args.update(override)
    result = run_module('haproxy_error_rate', args)
    assert result.get('failed') and needle in result['msg'], result
