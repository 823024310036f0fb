"""Unit tests for the pure switch/drain planning and its orchestration against an in-memory HAProxy."""
import math

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils import traffic_switch as ts
from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_runtime import (
    HAProxyCommandError, HAProxyConnectionError, HAProxyError, HAProxyReloadError, Server,
)


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


@pytest.mark.parametrize('timeout,interval,polls', [
    (3, 1, 4), (2.5, 1, 4), (0, 1, 1), (10, 3, 5), (1, 0.25, 5),
    # float timeouts and intervals: no extra poll from float noise (0.9 / 0.3 == 3.0000000000000004, 3 * 0.3 < 0.9)
    (0.9, 0.3, 4), (0.3, 0.1, 4), (0.7, 0.1, 8), (0.6, 0.2, 4), (1.0, 0.1, 11), (2.1, 0.7, 4), (0.35, 0.1, 5),
    (0.5, 0.2, 4), (300, 0.1, 3001), (0.05, 0.2, 2),
])
def test_poll_count_is_exact(timeout, interval, polls):
    clock = FakeClock()
    calls = []

    def counts():
        calls.append(clock.now)
        return {'blue1': (1, 0)}
    with pytest.raises(ts.DrainTimeout) as err:
        ts.wait_drained(counts, timeout, interval, clock=clock.clock, sleep=clock.sleep)
    assert len(calls) == polls
    assert calls[0] == 100.0 and calls[-1] == pytest.approx(100.0 + timeout)   # first at once, last at the deadline
    assert err.value.counts == {'blue1': (1, 0)}
    assert 'blue1: 1 current, 0 queued' in str(err.value)


@pytest.mark.parametrize('timeout,interval', [(0.9, 0.3), (0.3, 0.1), (0.7, 0.1), (2.5, 1), (0.35, 0.1), (7.7, 1.1), (1e-3, 1e-4)])
def test_poll_schedule_ends_exactly_at_the_deadline_with_steps_of_at_most_interval(timeout, interval):
    offsets = ts.poll_schedule(timeout, interval)
    assert offsets[0] == 0 and offsets[-1] == timeout
    assert len(offsets) == int(round(math.ceil(round(timeout / interval, 6)))) + 1
    steps = [b - a for a, b in zip(offsets, offsets[1:])]
    assert all(0 < step <= interval * (1 + 1e-9) for step in steps), steps


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


def refuse_state(hp, refused):
    """Make the fake HAProxy answer 'Permission denied' to every `set server ... state <refused>`."""
    original = hp.set_server_state

    def set_server_state(backend, server, state):
        if state == refused:
            raise HAProxyCommandError('set server', 'Permission denied')
        original(backend, server, state)
    hp.set_server_state = set_server_state


def test_partial_apply_is_reported():
    hp = two()
    refuse_state(hp, 'drain')
    with pytest.raises(ts.ChangedError, match='Permission denied') as err:
        ts.execute_swap(hp, 'app', COLORS, 'green')
    assert err.value.changed is True and isinstance(err.value.cause, HAProxyCommandError)
    assert err.value.applied == [('green1', 'state', 'ready')]
    assert err.value.previous['active'] == 'blue'
    assert err.value.current['servers'] == {'blue1': srv('ready', 100), 'green1': srv('ready', 100)}   # read back


def test_failure_of_the_first_step_changed_nothing_and_is_raised_as_it_is():
    hp = two()

    def refuse(backend, server, state):
        raise HAProxyCommandError('set server', 'Permission denied')
    hp.set_server_state = refuse
    with pytest.raises(HAProxyCommandError):
        ts.execute_swap(hp, 'app', COLORS, 'green')


def test_failure_after_waking_a_maint_server_is_a_change():
    hp = two(green=('maint', 100, True))
    refuse_state(hp, 'ready')
    with pytest.raises(ts.ChangedError, match='woken from maint to drain: green1') as err:
        ts.execute_swap(hp, 'app', COLORS, 'green', sleep=lambda s: None)
    assert err.value.current['servers']['green1'] == srv('drain', 100)


# ---------------------------------------------------------------- swap, persist, reload


class Opener:
    """open_client for swap_and_persist: hands out the fake, optionally failing from the n-th opening on."""

    def __init__(self, fake, fail_from=None):
        self.fake = fake
        self.opened = 0
        self.fail_from = fail_from

    def __call__(self):
        self.opened += 1
        if self.fail_from is not None and self.opened >= self.fail_from:
            raise HAProxyConnectionError('cannot connect to HAProxy socket /x: refused')
        return self

    def __enter__(self):
        return self.fake

    def __exit__(self, *exc):
        return False


def test_reload_failure_after_the_switch_reports_changed_with_previous_and_current():
    hp = two()
    persisted = []

    def reload():
        raise HAProxyReloadError('HAProxy reload failed')
    with pytest.raises(ts.ChangedError, match='the switch was applied, but the reload failed: HAProxy reload failed') as err:
        ts.swap_and_persist(Opener(hp), 'app', COLORS, 'green', persist=persisted.append, reload=reload)
    assert persisted == [hp]
    assert err.value.changed is True and isinstance(err.value.cause, HAProxyReloadError)
    assert err.value.previous == {'active': 'blue', 'weight': 100,
                                  'servers': {'blue1': srv('ready', 100), 'green1': srv('drain', 100)}}
    assert err.value.current == {'active': 'green', 'weight': 100,
                                 'servers': {'blue1': srv('drain', 100), 'green1': srv('ready', 100)}}
    assert err.value.applied == [('green1', 'state', 'ready'), ('blue1', 'state', 'drain')]


def test_reload_failure_with_an_unreadable_socket_reports_the_switched_state():
    hp = two()

    def reload():
        raise HAProxyReloadError('no new worker')
    with pytest.raises(ts.ChangedError) as err:
        ts.swap_and_persist(Opener(hp, fail_from=2), 'app', COLORS, 'green', persist=lambda c: None, reload=reload)
    assert err.value.current['active'] == 'green' and err.value.previous['active'] == 'blue'


def test_reading_back_after_the_reload_fails_is_a_change():
    hp = two()
    with pytest.raises(ts.ChangedError, match='reading the state back after the reload failed') as err:
        ts.swap_and_persist(Opener(hp, fail_from=2), 'app', COLORS, 'green', persist=lambda c: None, reload=lambda: None)
    assert err.value.previous['active'] == 'blue' and err.value.current['active'] == 'green'


def test_state_file_failure_after_the_switch_is_a_change_and_before_it_is_not():
    def persist(client):
        raise HAProxyError('cannot write the server-state file /x: Permission denied')
    hp = two()
    with pytest.raises(ts.ChangedError, match='writing the server-state file failed') as err:
        ts.swap_and_persist(Opener(hp), 'app', COLORS, 'green', persist=persist, reload=lambda: None)
    assert err.value.current['active'] == 'green'
    with pytest.raises(HAProxyError) as err:   # the same switch again changes nothing: a plain failure
        ts.swap_and_persist(Opener(hp), 'app', COLORS, 'green', persist=persist)
    assert not isinstance(err.value, ts.ChangedError)


def test_reload_that_loses_the_switch_is_a_change():
    hp = two()

    def reload():   # a new worker that did not load the state file: the configuration's states
        hp.state['blue1']['admin'] = 'ready'
        hp.state['green1']['admin'] = 'ready'
    with pytest.raises(ts.ChangedError, match='did not keep the switched state for blue1') as err:
        ts.swap_and_persist(Opener(hp), 'app', COLORS, 'green', persist=lambda c: None, reload=reload)
    assert err.value.current['servers']['blue1'] == srv('ready', 100)


def test_swap_and_persist_reloads_only_after_a_change_and_never_in_check_mode():
    hp = two()
    reloads, persisted = [], []
    res = ts.swap_and_persist(Opener(hp), 'app', COLORS, 'green', persist=persisted.append, reload=lambda: reloads.append(1))
    assert res['changed'] and reloads == [1] and len(persisted) == 1 and res['current']['active'] == 'green'
    res = ts.swap_and_persist(Opener(hp), 'app', COLORS, 'green', persist=persisted.append, reload=lambda: reloads.append(1))
    assert not res['changed'] and reloads == [1] and len(persisted) == 2
    res = ts.swap_and_persist(Opener(hp), 'app', COLORS, 'blue', check_mode=True, persist=persisted.append,
                              reload=lambda: reloads.append(1))
    assert res['changed'] and reloads == [1] and len(persisted) == 2 and hp.writes[-1] == ('blue1', 'state', 'drain')


# ---------------------------------------------------------------- drain failures


def test_socket_error_after_draining_is_a_change():
    hp = two()
    hp.state['blue1']['scur'] = 2

    def lose_the_socket(fake):
        raise HAProxyConnectionError('HAProxy socket /x: no complete reply to "show stat app -1 -1" within 10.0s')
    hp.session_script = lose_the_socket
    clock = FakeClock()
    with pytest.raises(ts.ChangedError, match='no complete reply.*after setting blue1 to drain') as err:
        ts.execute_drain(hp, 'app', ['blue1'], timeout=3, interval=1, clock=clock.clock, sleep=clock.sleep)
    assert err.value.changed is True and isinstance(err.value.cause, HAProxyConnectionError)
    assert hp.state['blue1']['admin'] == 'drain'


def test_socket_error_with_nothing_changed_is_raised_as_it_is():
    hp = two(blue=('drain', 100, True))

    def lose_the_socket(fake):
        raise HAProxyConnectionError('gone')
    hp.session_script = lose_the_socket
    with pytest.raises(HAProxyConnectionError):
        ts.execute_drain(hp, 'app', ['blue1'], timeout=3, interval=1, sleep=lambda s: None)


def test_failure_setting_maint_after_the_drain_is_a_change():
    hp = two(blue=('drain', 100, True))   # already drained: only the maint step changes something
    original = hp.set_server_state

    def refuse_maint(backend, server, state):
        if server == 'green1':
            raise HAProxyCommandError('set server', 'Permission denied')
        original(backend, server, state)
    hp.set_server_state = refuse_maint
    with pytest.raises(ts.ChangedError, match='after setting blue1 to maint'):
        ts.execute_drain(hp, 'app', ['blue1', 'green1'], timeout=0, interval=1)


def test_drain_timeout_carries_whether_it_drained():
    hp = two()
    hp.state['blue1']['scur'] = 2
    clock = FakeClock()
    with pytest.raises(ts.DrainTimeout) as err:
        ts.execute_drain(hp, 'app', ['blue1'], timeout=1, interval=1, clock=clock.clock, sleep=clock.sleep)
    assert err.value.changed is True
    with pytest.raises(ts.DrainTimeout) as err:
        ts.execute_drain(hp, 'app', ['blue1'], timeout=1, interval=1, clock=clock.clock, sleep=clock.sleep)
    assert err.value.changed is False
