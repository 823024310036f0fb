"""Unit tests for the error-rate gate (traffic_gate): the rate over several load balancers and its outcomes."""
import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils import traffic_gate as tg
from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_runtime import SERVER_COUNTERS


def counters(ok=0, s5xx=0, eresp=0, econ=0, **other):
    values = dict((c, 0) for c in SERVER_COUNTERS)
    values.update(hrsp_2xx=ok, hrsp_5xx=s5xx, eresp=eresp, econ=econ, mode='http')
    values.update(other)
    return values


def snap(label, servers, pid=100, started=1000, backend='app'):
    return {'label': label, 'backend': backend, 'pid': pid, 'started': started, 'servers': servers}


ZERO = {'green1': counters(), 'blue1': counters()}


def test_one_request_in_twenty_answering_5xx_is_a_rate_of_five_percent():
    before = [snap('lb1', ZERO)]
    after = [snap('lb1', {'green1': counters(ok=190, s5xx=10), 'blue1': counters(ok=200)})]
    result = tg.error_rate(before, after, servers=['green1'], max_error_rate=0.0)
    assert result['outcome'] == 'fail' and not result['passed']
    assert (result['errors'], result['requests'], result['rate']) == (10, 200, 0.05)
    assert result['counts'] == {'hrsp_5xx': 10, 'eresp': 0, 'econ': 0, 'responses': 200}
    assert result['msg'] == ('error rate 5.00 % is above the allowed 0.00 %: 10 errors in 200 requests of green1 on 1 load '
                             'balancer (10 5xx answers, 0 response errors, 0 connection errors)')
    assert tg.error_rate(before, after, servers=['green1'], max_error_rate=0.05)['outcome'] == 'pass'   # at most
    assert tg.error_rate(before, after, servers=['green1'], max_error_rate=0.049)['outcome'] == 'fail'


def test_summed_over_load_balancers_and_only_the_chosen_servers():
    before = [snap('lb1', {'green1': counters(ok=50, s5xx=1), 'blue1': counters(ok=900, s5xx=90)}),
              snap('lb2', {'green1': counters(ok=10), 'blue1': counters()}, pid=200)]
    after = [snap('lb2', {'green1': counters(ok=108, eresp=2, econ=3), 'blue1': counters(s5xx=500)}, pid=200),
             snap('lb1', {'green1': counters(ok=140, s5xx=11), 'blue1': counters(ok=901, s5xx=95)})]
    result = tg.error_rate(before, after, servers=['green1'], max_error_rate=0.1)
    # lb1: 90 ok + 10 5xx; lb2: 98 ok + 2 eresp + 3 econ -> 15 errors in 203 requests
    assert (result['errors'], result['requests']) == (15, 203)
    assert result['counts'] == {'hrsp_5xx': 10, 'eresp': 2, 'econ': 3, 'responses': 198}
    assert result['load_balancers'] == {'lb1': {'errors': 10, 'requests': 100}, 'lb2': {'errors': 5, 'requests': 103}}
    assert result['servers'] == {'green1': {'errors': 15, 'requests': 203}}
    assert result['outcome'] == 'pass' and 'on 2 load balancers' in result['msg'] and '15 errors in 203 requests' in result['msg']
    everything = tg.error_rate(before, after, max_error_rate=0.1)   # no servers given: every server of the snapshots
    assert sorted(everything['servers']) == ['blue1', 'green1'] and everything['outcome'] == 'fail'


def test_1xx_and_retries_are_not_counted():
    before = [snap('lb1', {'green1': counters()})]
    after = [snap('lb1', {'green1': counters(ok=40, hrsp_1xx=7, hrsp_3xx=5, hrsp_4xx=4, hrsp_other=1, wretr=9, wredis=3)})]
    result = tg.error_rate(before, after)
    assert (result['errors'], result['requests'], result['outcome']) == (0, 50, 'pass')


def test_too_few_requests_is_said_not_passed():
    before = [snap('lb1', {'green1': counters()})]
    after = [snap('lb1', {'green1': counters(ok=4, s5xx=1)})]
    result = tg.error_rate(before, after, max_error_rate=0.05, min_requests=20)
    assert result['outcome'] == 'too_few' and not result['passed'] and result['rate'] == 0.2
    assert result['msg'] == ('too few requests to judge the error rate: 5 < minimum 20 (of green1 on 1 load balancer; 1 errors: '
                             '1 5xx answers, 0 response errors, 0 connection errors)')
    idle = tg.error_rate(before, [snap('lb1', {'green1': counters()})], min_requests=1)
    assert idle['outcome'] == 'too_few' and idle['rate'] is None and '0 < minimum 1' in idle['msg']


def test_too_few_requests_with_errors_already_above_the_allowed_share_fails():
    before = [snap('lb1', {'green1': counters()})]
    after = [snap('lb1', {'green1': counters(ok=1, s5xx=2, econ=1)})]
    result = tg.error_rate(before, after, max_error_rate=0.05, min_requests=20)   # 3 errors > 5 % of 20
    assert result['outcome'] == 'fail'
    assert result['msg'].startswith('3 errors in only 4 requests of green1 on 1 load balancer')
    assert 'even of the minimum of 20 requests' in result['msg']
    assert tg.error_rate(before, after, max_error_rate=0.0, min_requests=20)['outcome'] == 'fail'


@pytest.mark.parametrize('after,needle', [
    ([snap('lb1', {'green1': counters(ok=500)}, pid=101)], 'lb1 (HAProxy worker pid 100 -> 101)'),
    ([snap('lb1', {'green1': counters(ok=500)}, started=1001)], 'lb1 (HAProxy worker started again: start time 1000 -> 1001)'),
    ([snap('lb1', {'green1': counters(ok=3)})], 'lb1 (hrsp_2xx of green1 went from 10 to 3)'),
])
def test_counters_that_restarted_cannot_be_judged(after, needle):
    before = [snap('lb1', {'green1': counters(ok=10)})]
    result = tg.error_rate(before, after)
    assert result['outcome'] == 'reset' and result['rate'] is None and not result['passed']
    assert needle in result['msg'] and 'take the first snapshot after the switch' in result['msg']


def test_module_results_with_extra_keys_are_snapshots():
    """What a registered loop gives: each result carries item, changed, invocation ... next to the snapshot."""
    before = [dict(snap('lb1', {'green1': counters()}), changed=False, item='lb1', total={})]
    after = [dict(snap('lb1', {'green1': counters(ok=30)}), changed=False, item='lb1', failed=False)]
    assert tg.error_rate(before, after)['outcome'] == 'pass'


@pytest.mark.parametrize('kw,needle', [
    ({'before': []}, 'before: expected a non-empty list'),
    ({'before': {'label': 'lb1'}}, 'before: expected a non-empty list'),
    ({'after': [{'skipped': True, 'changed': False}]}, 'after[0] is not a haproxy_stats result'),
    ({'before': [snap('lb1', ZERO), snap('lb1', ZERO)]}, 'two snapshots of load balancer lb1, backend app'),
    ({'after': [snap('lb2', ZERO)]}, 'only before: lb1 (backend app); only after: lb2 (backend app)'),
    ({'after': [snap('lb1', ZERO, backend='other')]}, 'only before: lb1 (backend app); only after: lb1 (backend other)'),
    ({'servers': ['green9']}, 'server green9 is not in the before snapshot of lb1 (it has: blue1, green1)'),
    ({'servers': 'green1'}, 'servers must be a non-empty list'),
    ({'after': [snap('lb1', {'green1': counters(mode='tcp'), 'blue1': counters()})]}, 'is in tcp mode'),
    ({'max_error_rate': 1.5}, 'max_error_rate must be a share between 0 and 1'),
    ({'max_error_rate': -0.1}, 'max_error_rate must be a share between 0 and 1'),
    ({'min_requests': 0}, 'min_requests must be an integer of at least 1'),
])
def test_invalid_input_is_a_clear_error(kw, needle):
    args = dict(before=[snap('lb1', ZERO)], after=[snap('lb1', ZERO)])
    args.update(kw)
    with pytest.raises(tg.GateError) as err:
        tg.error_rate(**args)
    assert needle in str(err.value)


class StubClient:
    address = '/run/haproxy/admin.sock'

    def show_info(self):
        return {'Pid': '4242', 'Start_time_sec': '1796576654', 'Name': 'HAProxy'}

    def server_counters(self, backend, names=None):
        assert backend == 'app'
        data = {'green1': counters(ok=95, s5xx=5, eresp=1, wretr=2), 'green2': counters(ok=10, econ=2)}
        return dict((n, data[n]) for n in (names or sorted(data)))


def test_read_snapshot_adds_totals_and_a_default_label(monkeypatch):
    monkeypatch.setattr(tg.socket, 'gethostname', lambda: 'lb1')
    snapshot = tg.read_snapshot(StubClient(), 'app')
    assert snapshot['label'] == 'lb1:/run/haproxy/admin.sock'
    assert (snapshot['backend'], snapshot['pid'], snapshot['started']) == ('app', 4242, 1796576654)
    assert snapshot['servers']['green1']['responses'] == 100 and snapshot['servers']['green1']['errors'] == 6
    assert snapshot['total']['hrsp_2xx'] == 105 and snapshot['total']['econ'] == 2 and snapshot['total']['wretr'] == 2
    assert snapshot['total']['responses'] == 110 and snapshot['total']['errors'] == 8
    one = tg.read_snapshot(StubClient(), 'app', names=['green2'], label='edge-a')
    assert one['label'] == 'edge-a' and list(one['servers']) == ['green2']
