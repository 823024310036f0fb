"""Unit tests for the pure switch/drain planning and its orchestration against an in-memory HAProxy."""
import math

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils import traffic_switch as ts
from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_runtime import HAProxyCommandError, Server


def share(weights_a, count_a, weights_o, count_o):
    return 100.0 * weights_a * count_a / (weights_a * count_a + weights_o * count_o)


# ---------------------------------------------------------------- weights

@pytest.mark.parametrize('n_active', [1, 2, 3, 5, 7])
@pytest.mark.parametrize('n_other', [1, 2, 3, 4, 9])
@pytest.mark.parametrize('weight', [1, 5, 10, 25, 33, 50, 75, 90, 99])
def test_derived_weights_hold_the_share_whatever_the_counts(n_active, n_other, weight):
    feasible = any(abs(share(a, n_active, o, n_other) - weight) <= 1.0 for a in range(1, 257) for o in range(1, 257))
    if not feasible:   # e.g. 1 % on 7 servers against 1: needs a per-server ratio beyond 256:1
        with pytest.raises(ts.SwitchError, match='cannot be expressed'):
            ts.derive_weights(n_active, n_other, weight)
        return
    w_a, w_o = ts.derive_weights(n_active, n_other, weight)
    assert 1 <= w_a <= 256 and 1 <= w_o <= 256
    # exact when the integer weights fit; within 1 percentage point when they had to be fitted
    assert abs(share(w_a, n_active, w_o, n_other) - weight) <= 1.0


def test_derived_weights_are_readable_for_equal_counts():
    assert ts.derive_weights(1, 1, 10) == (10, 90)
    assert ts.derive_weights(2, 2, 25) == (25, 75)
    assert ts.derive_weights(1, 2, 10) == (20, 90)     # green1 gets 20/200 = 10 %


def test_full_weight_drains_the_other_color():
    assert ts.derive_weights(2, 3, 100) == (100, None)


def srv(admin='ready', weight=100):
    return {'admin_state': admin, 'weight': weight}


COLORS = {'blue': ['blue1'], 'green': ['green1']}


def test_plan_full_switch_orders_gaining_before_losing():
    servers = {'blue1': srv('ready', 100), 'green1': srv('drain', 100)}
    desired, actions = ts.plan_swap(COLORS, 'green', 100, servers)
    assert desired == {'green1': srv('ready', 100), 'blue1': srv('drain', 100)}
    assert actions == [('green1', 'state', 'ready'), ('blue1', 'state', 'drain')]


def test_plan_canary_sets_weights_before_ready_and_keeps_other_ready():
    servers = {'blue1': srv('ready', 100), 'green1': srv('maint', 100)}
    desired, actions = ts.plan_swap(COLORS, 'green', 10, servers)
    assert desired == {'green1': srv('ready', 10), 'blue1': srv('ready', 90)}
    assert actions == [('green1', 'weight', 10), ('green1', 'state', 'ready'), ('blue1', 'weight', 90)]


def test_plan_idempotent():
    servers = {'blue1': srv('drain', 37), 'green1': srv('ready', 100)}
    desired, actions = ts.plan_swap(COLORS, 'green', 100, servers)
    assert actions == []
    assert desired['blue1'] == srv('drain', 37)   # a drained server keeps its weight


def test_describe_reports_larger_share_as_active():
    assert ts.describe(COLORS, {'blue1': srv('ready', 90), 'green1': srv('ready', 10)}) == {
        'active': 'blue', 'weight': 90, 'servers': {'blue1': srv('ready', 90), 'green1': srv('ready', 10)}}
    assert ts.describe(COLORS, {'blue1': srv('drain', 90), 'green1': srv('ready', 10)})['active'] == 'green'
    assert ts.describe(COLORS, {'blue1': srv('drain'), 'green1': srv('maint')})['active'] is None
    tie = {'blue1': srv('ready', 50), 'green1': srv('ready', 50)}
    assert ts.describe(COLORS, tie, prefer='green')['active'] == 'green'
    assert ts.describe(COLORS, tie)['weight'] == 50


@pytest.mark.parametrize('colors,active,weight,match', [
    ({}, 'blue', 100, 'non-empty'),
    ({'blue': ['blue1'], 'green': []}, 'blue', 100, 'colors.green'),
    ({'blue': ['blue1'], 'green': ['blue1']}, 'blue', 100, 'both colors'),
    (COLORS, 'red', 100, 'not one of the colors'),
    (COLORS, 'blue', 0, 'between 1 and 100'),
    (COLORS, 'blue', 101, 'between 1 and 100'),
    ({'blue': ['blue1']}, 'blue', 50, 'exactly two colors'),
    ({'blue': ['blue1'], 'green': ['green9']}, 'blue', 100, 'No such server in the backend: green9'),
])
def test_validation(colors, active, weight, match):
    with pytest.raises(ts.SwitchError, match=match):
        ts.validate_colors(colors, active, weight, {'blue1': {}, 'green1': {}})


# ---------------------------------------------------------------- guardrails

def health(**kw):
    return dict((name, {'passing': passing, 'admin_state': admin}) for name, (passing, admin) in kw.items())


def test_guardrail_refuses_a_down_color_without_force():
    h = health(blue1=(True, 'ready'), green1=(False, 'drain'))
    desired = {'green1': srv('ready'), 'blue1': srv('drain')}
    with pytest.raises(ts.GuardrailError, match='green1 are down'):
        ts.check_guardrails(COLORS, 'green', desired, h)


def test_guardrail_never_takes_the_last_serving_server_even_with_force():
    h = health(blue1=(True, 'ready'), green1=(False, 'drain'))
    desired = {'green1': srv('ready'), 'blue1': srv('drain')}
    with pytest.raises(ts.GuardrailError, match='without a server that is both ready and passing'):
        ts.check_guardrails(COLORS, 'green', desired, h, force=True)


def test_force_canary_on_a_down_color_is_allowed_while_the_other_serves():
    h = health(blue1=(True, 'ready'), green1=(False, 'drain'))
    desired = {'green1': srv('ready', 10), 'blue1': srv('ready', 90)}
    warnings = ts.check_guardrails(COLORS, 'green', desired, h, force=True)
    assert any('force' in w for w in warnings)


def test_force_when_nothing_serves_already():
    h = health(blue1=(False, 'ready'), green1=(False, 'drain'))
    desired = {'green1': srv('ready'), 'blue1': srv('drain')}
    with pytest.raises(ts.GuardrailError):
        ts.check_guardrails(COLORS, 'green', desired, h)
    assert ts.check_guardrails(COLORS, 'green', desired, h, force=True)


def test_server_outside_the_colors_counts_as_serving():
    h = health(blue1=(True, 'ready'), green1=(False, 'drain'), spare=(True, 'ready'))
    desired = {'green1': srv('ready'), 'blue1': srv('drain')}
    ts.check_guardrails(COLORS, 'green', desired, h, force=True)


# ---------------------------------------------------------------- drain polling

class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize('timeout,interval', [(3, 1), (2.5, 1), (0, 1), (10, 3), (1, 0.25)])
def test_poll_count_is_exact(timeout, interval):
    clock = FakeClock()
    calls = []

    def counts():
        calls.append(clock.now)
        return {'blue1': (1, 0)}
    with pytest.raises(ts.DrainTimeout) as err:
        ts.wait_drained(counts, timeout, interval, clock=clock.clock, sleep=clock.sleep)
    assert len(calls) == int(math.ceil(float(timeout) / interval)) + 1
    assert calls[0] == 100.0 and calls[-1] == 100.0 + timeout   # first at once, last at the deadline
    assert err.value.counts == {'blue1': (1, 0)}
    assert 'blue1: 1 current, 0 queued' in str(err.value)


def test_wait_drained_returns_when_scur_and_qcur_reach_zero():
    clock = FakeClock()
    seq = iter([{'a': (2, 0), 'b': (0, 0)}, {'a': (0, 1), 'b': (0, 0)}, {'a': (0, 0), 'b': (0, 0)}])
    waited, counts, polls = ts.wait_drained(lambda: next(seq), 10, 1, clock=clock.clock, sleep=clock.sleep)
    assert polls == 3 and waited == 2.0 and counts['a'] == (0, 0)


# ---------------------------------------------------------------- orchestration against an in-memory HAProxy

class FakeHAProxy:
    """Models what the modules use: admin state, weight, health, sessions; records writes."""

    def __init__(self, servers, backend='app'):
        self.backend = backend
        self.state = servers   # name -> dict(admin, weight, up, scur)
        self.writes = []
        self.session_script = None

    def _check(self, backend, server=None):
        if backend != self.backend:
            raise HAProxyCommandError('x', "Can't find backend.")
        if server is not None and server not in self.state:
            raise HAProxyCommandError('x', 'No such server.')

    def servers(self, backend):
        self._check(backend)
        bits = {'ready': 0, 'drain': 0x08, 'maint': 0x01}
        out = {}
        for name, s in self.state.items():
            out[name] = Server(backend, name, bits[s['admin']], 2 if s['up'] else 0, s['weight'], 100,
                               check_health=2 if s['up'] else 0, check_enabled=True, scur=s.get('scur', 0), rise=1, fall=2)
        return out

    def session_counts(self, backend, names):
        self._check(backend)
        if self.session_script:
            self.session_script(self)
        return dict((n, (self.state[n].get('scur', 0), 0)) for n in names)

    def set_server_state(self, backend, server, state):
        self._check(backend, server)
        self.writes.append((server, 'state', state))
        self.state[server]['admin'] = state

    def set_server_weight(self, backend, server, weight):
        self._check(backend, server)
        self.writes.append((server, 'weight', weight))
        self.state[server]['weight'] = weight

    def shutdown_sessions(self, backend, server):
        self._check(backend, server)
        self.writes.append((server, 'shutdown', None))
        self.state[server]['scur'] = 0


def two(blue=('ready', 100, True), green=('drain', 100, True)):
    return FakeHAProxy({'blue1': dict(admin=blue[0], weight=blue[1], up=blue[2]),
                        'green1': dict(admin=green[0], weight=green[1], up=green[2])})


def test_execute_swap_full_and_idempotent():
    hp = two()
    res = ts.execute_swap(hp, 'app', COLORS, 'green')
    assert res['changed'] and res['previous']['active'] == 'blue' and res['previous']['weight'] == 100
    assert res['current'] == {'active': 'green', 'weight': 100,
                              'servers': {'blue1': srv('drain', 100), 'green1': srv('ready', 100)}}
    again = ts.execute_swap(hp, 'app', COLORS, 'green')
    assert not again['changed'] and len(hp.writes) == 2


def test_execute_swap_check_mode_writes_nothing():
    hp = two()
    res = ts.execute_swap(hp, 'app', COLORS, 'green', weight=10, check_mode=True)
    assert res['changed'] and hp.writes == []
    assert res['current']['servers'] == {'blue1': srv('ready', 90), 'green1': srv('ready', 10)}
    assert res['current']['active'] == 'blue' and res['current']['weight'] == 90


def test_execute_swap_refuses_down_color_and_changes_nothing():
    hp = two(green=('drain', 100, False))
    with pytest.raises(ts.GuardrailError):
        ts.execute_swap(hp, 'app', COLORS, 'green')
    assert hp.writes == []


def test_execute_swap_wakes_maint_servers_and_restores_them_on_refusal():
    hp = two(green=('maint', 100, False))
    with pytest.raises(ts.GuardrailError):
        ts.execute_swap(hp, 'app', COLORS, 'green', timeout=0, sleep=lambda s: None)
    assert hp.writes == [('green1', 'state', 'drain'), ('green1', 'state', 'maint')]
    assert hp.state['green1']['admin'] == 'maint'


def test_execute_swap_missing_backend_and_server():
    with pytest.raises(HAProxyCommandError, match="Can't find backend"):
        ts.execute_swap(two(), 'nope', COLORS, 'green')
    with pytest.raises(ts.SwitchError, match='green7'):
        ts.execute_swap(two(), 'app', {'blue': ['blue1'], 'green': ['green7']}, 'green')


def test_drain_waits_for_busy_up_server():
    """community.general #12286: a busy UP server must be drained and waited for, not returned at once."""
    hp = two(blue=('ready', 100, True))
    hp.state['blue1']['scur'] = 3
    clock = FakeClock()

    def finish_later(fake):
        if clock.now >= 104:
            fake.state['blue1']['scur'] = 0
    hp.session_script = finish_later
    res = ts.execute_drain(hp, 'app', ['blue1'], timeout=10, interval=1, clock=clock.clock, sleep=clock.sleep)
    assert res['waited'] == 4.0 and res['sessions'] == {'blue1': 0} and not res['shutdown']
    assert hp.writes == [('blue1', 'state', 'drain'), ('blue1', 'state', 'maint')]


def test_drain_a_down_server():
    """community.general #8092: a DOWN server must be drainable (admin state from bits, not the status text)."""
    hp = two(blue=('ready', 100, False))
    res = ts.execute_drain(hp, 'app', ['blue1'], timeout=5, interval=1, maint=False)
    assert res['changed'] and hp.writes == [('blue1', 'state', 'drain')]
    again = ts.execute_drain(hp, 'app', ['blue1'], timeout=5, interval=1, maint=False)
    assert not again['changed']


def test_drain_timeout_fail_leaves_drain_and_names_counts():
    hp = two()
    hp.state['blue1']['scur'] = 2
    clock = FakeClock()
    with pytest.raises(ts.DrainTimeout, match='blue1: 2 current'):
        ts.execute_drain(hp, 'app', ['blue1'], timeout=3, interval=1, clock=clock.clock, sleep=clock.sleep)
    assert hp.state['blue1']['admin'] == 'drain'


def test_drain_timeout_shutdown_then_maint():
    hp = two()
    hp.state['blue1']['scur'] = 2
    clock = FakeClock()
    res = ts.execute_drain(hp, 'app', ['blue1'], timeout=3, interval=1, on_timeout='shutdown', clock=clock.clock, sleep=clock.sleep)
    assert res['shutdown'] and res['sessions'] == {'blue1': 0} and res['waited'] == 3.0
    assert hp.writes == [('blue1', 'state', 'drain'), ('blue1', 'shutdown', None), ('blue1', 'state', 'maint')]
    assert 'shut down the sessions of blue1' in res['warnings'][0]


def test_drain_check_mode_does_not_wait_or_write():
    hp = two()
    hp.state['blue1']['scur'] = 5
    res = ts.execute_drain(hp, 'app', ['blue1'], timeout=300, check_mode=True)
    assert res['changed'] and res['waited'] == 0 and res['sessions'] == {'blue1': 5} and hp.writes == []
    assert res['after'] == {'blue1': 'maint'}


def test_drain_missing_server_and_backend():
    with pytest.raises(ts.SwitchError, match='No such server in backend app: nope'):
        ts.execute_drain(two(), 'app', ['nope'])
    with pytest.raises(HAProxyCommandError):
        ts.execute_drain(two(), 'other', ['blue1'])


def test_resolve_drain_servers():
    assert ts.resolve_drain_servers(['a']) == ['a']
    assert ts.resolve_drain_servers(None, COLORS, 'blue') == ['blue1']
    with pytest.raises(ts.SwitchError):
        ts.resolve_drain_servers(None, COLORS, 'red')


def test_partial_apply_is_reported():
    hp = two()
    original = hp.set_server_state

    def fail_on_drain(backend, server, state):
        if state == 'drain':
            raise HAProxyCommandError('set server', 'Permission denied')
        original(backend, server, state)
    hp.set_server_state = fail_on_drain
    with pytest.raises(HAProxyCommandError) as err:
        ts.execute_swap(hp, 'app', COLORS, 'green')
    assert err.value.applied == [('green1', 'state', 'ready')]
