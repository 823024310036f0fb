"""Unit tests for applying switch and drain plans (traffic_apply) against an in-memory HAProxy."""
import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils import traffic_apply as ta
from ansible_collections.zdt.bluegreen.plugins.module_utils import traffic_plan as tp
from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_master import HAProxyReloadError
from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_runtime import (
    HAProxyCommandError, HAProxyConnectionError, HAProxyError, Server,
)
from zdt_lab.traffic_fakes import COLORS, FakeClock, srv


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
            # a server declared `disabled` in the configuration keeps 0x04 whatever its admin state (HAProxy 2.6)
            admin_bits = bits[s['admin']] | (0x04 if s.get('disabled') else 0)
            out[name] = Server(backend, name, admin_bits, 2 if s['up'] and s['admin'] != 'maint' else 0, s['weight'], 100,
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
    res = ta.execute_swap(hp, 'app', COLORS, 'green')
    assert res['changed'] and res['previous']['active'] == 'blue' and res['previous']['weight'] == 100
    assert res['current'] == {'active': 'green', 'weight': 100,
                              'servers': {'blue1': srv('drain', 100), 'green1': srv('ready', 100)}}
    again = ta.execute_swap(hp, 'app', COLORS, 'green')
    assert not again['changed'] and len(hp.writes) == 2


def test_execute_swap_check_mode_writes_nothing():
    hp = two()
    res = ta.execute_swap(hp, 'app', COLORS, 'green', weight=10, check_mode=True)
    assert res['changed'] and hp.writes == []
    assert res['current']['servers'] == {'blue1': srv('ready', 90), 'green1': srv('ready', 10)}
    assert res['current']['active'] == 'blue' and res['current']['weight'] == 90


def test_execute_swap_refuses_down_color_and_changes_nothing():
    hp = two(green=('drain', 100, False))
    with pytest.raises(tp.GuardrailError):
        ta.execute_swap(hp, 'app', COLORS, 'green')
    assert hp.writes == []


def test_execute_swap_wakes_maint_servers_and_restores_them_on_refusal():
    hp = two(green=('maint', 100, False))
    with pytest.raises(tp.GuardrailError):
        ta.execute_swap(hp, 'app', COLORS, 'green', timeout=0, sleep=lambda s: None)
    assert hp.writes == [('green1', 'state', 'drain'), ('green1', 'state', 'maint')]
    assert hp.state['green1']['admin'] == 'maint'


def test_execute_swap_activates_servers_disabled_in_the_configuration():
    """The idle color declared `disabled`: woken from maint (5) to drain (12), judged, made ready (4) and read back
    as ready; the switch back drains it (12) and a second switch is idempotent."""
    hp = two(green=('maint', 100, True))
    hp.state['green1']['disabled'] = True
    res = ta.execute_swap(hp, 'app', COLORS, 'green', sleep=lambda s: None)
    assert res['changed'] and res['current']['active'] == 'green', res
    assert res['current']['servers']['green1'] == srv('ready', 100)
    assert hp.writes == [('green1', 'state', 'drain'), ('green1', 'state', 'ready'), ('blue1', 'state', 'drain')]
    assert not ta.execute_swap(hp, 'app', COLORS, 'green')['changed']
    back = ta.execute_swap(hp, 'app', COLORS, 'blue')
    assert back['changed'] and back['current']['servers']['green1'] == srv('drain', 100)


def test_drain_of_a_ready_server_disabled_in_the_configuration():
    """Bits 4 (ready) must be drained and put to maint like any ready server, not skipped as `maint`."""
    hp = two(blue=('drain', 100, True), green=('ready', 100, True))
    hp.state['green1']['disabled'] = True
    res = ta.execute_drain(hp, 'app', ['green1'], timeout=1, interval=0.5, clock=FakeClock().clock, sleep=lambda s: None)
    assert res['changed'] and res['before'] == {'green1': 'ready'} and res['after'] == {'green1': 'maint'}
    assert hp.writes == [('green1', 'state', 'drain'), ('green1', 'state', 'maint')]


def test_execute_swap_missing_backend_and_server():
    with pytest.raises(HAProxyCommandError, match="Can't find backend"):
        ta.execute_swap(two(), 'nope', COLORS, 'green')
    with pytest.raises(tp.SwitchError, match='green7'):
        ta.execute_swap(two(), 'app', {'blue': ['blue1'], 'green': ['green7']}, 'green')


def test_drain_waits_for_busy_up_server():
    """community.general #12286: a busy UP server must be drained and waited for, not returned at once."""
    hp = two(blue=('ready', 100, True))
    hp.state['blue1']['scur'] = 3
    clock = FakeClock()

    def finish_later(fake):
        if clock.now >= 104:
            fake.state['blue1']['scur'] = 0
    hp.session_script = finish_later
    res = ta.execute_drain(hp, 'app', ['blue1'], timeout=10, interval=1, clock=clock.clock, sleep=clock.sleep)
    assert res['waited'] == 4.0 and res['sessions'] == {'blue1': 0} and not res['shutdown']
    assert hp.writes == [('blue1', 'state', 'drain'), ('blue1', 'state', 'maint')]


def test_drain_a_down_server():
    """community.general #8092: a DOWN server must be drainable (admin state from bits, not the status text)."""
    hp = two(blue=('ready', 100, False))
    res = ta.execute_drain(hp, 'app', ['blue1'], timeout=5, interval=1, maint=False)
    assert res['changed'] and hp.writes == [('blue1', 'state', 'drain')]
    again = ta.execute_drain(hp, 'app', ['blue1'], timeout=5, interval=1, maint=False)
    assert not again['changed']


def test_drain_timeout_fail_leaves_drain_and_names_counts():
    hp = two()
    hp.state['blue1']['scur'] = 2
    clock = FakeClock()
    with pytest.raises(tp.DrainTimeout, match='blue1: 2 current'):
        ta.execute_drain(hp, 'app', ['blue1'], timeout=3, interval=1, clock=clock.clock, sleep=clock.sleep)
    assert hp.state['blue1']['admin'] == 'drain'


def test_drain_timeout_shutdown_then_maint():
    hp = two()
    hp.state['blue1']['scur'] = 2
    clock = FakeClock()
    res = ta.execute_drain(hp, 'app', ['blue1'], timeout=3, interval=1, on_timeout='shutdown', clock=clock.clock, sleep=clock.sleep)
    assert res['shutdown'] and res['sessions'] == {'blue1': 0} and res['waited'] == 3.0 and res['cut'] == {'blue1': 2}
    assert hp.writes == [('blue1', 'state', 'drain'), ('blue1', 'shutdown', None), ('blue1', 'state', 'maint')]
    assert 'shut down the sessions of blue1' in res['warnings'][0]


def test_drain_check_mode_does_not_wait_or_write():
    hp = two()
    hp.state['blue1']['scur'] = 5
    res = ta.execute_drain(hp, 'app', ['blue1'], timeout=300, check_mode=True)
    assert res['changed'] and res['waited'] == 0 and res['sessions'] == {'blue1': 5} and hp.writes == []
    assert res['after'] == {'blue1': 'maint'}


def test_drain_missing_server_and_backend():
    with pytest.raises(tp.SwitchError, match='No such server in backend app: nope'):
        ta.execute_drain(two(), 'app', ['nope'])
    with pytest.raises(HAProxyCommandError):
        ta.execute_drain(two(), 'other', ['blue1'])


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
    with pytest.raises(tp.ChangedError, match='Permission denied') as err:
        ta.execute_swap(hp, 'app', COLORS, 'green')
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
        ta.execute_swap(hp, 'app', COLORS, 'green')


def test_failure_after_waking_a_maint_server_is_a_change():
    hp = two(green=('maint', 100, True))
    refuse_state(hp, 'ready')
    with pytest.raises(tp.ChangedError, match='woken from maint to drain: green1') as err:
        ta.execute_swap(hp, 'app', COLORS, 'green', sleep=lambda s: None)
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
    with pytest.raises(tp.ChangedError, match='the switch was applied, but the reload failed: HAProxy reload failed') as err:
        ta.swap_and_persist(Opener(hp), 'app', COLORS, 'green', persist=persisted.append, reload=reload)
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
    with pytest.raises(tp.ChangedError) as err:
        ta.swap_and_persist(Opener(hp, fail_from=2), 'app', COLORS, 'green', persist=lambda c: None, reload=reload)
    assert err.value.current['active'] == 'green' and err.value.previous['active'] == 'blue'


def test_reading_back_after_the_reload_fails_is_a_change():
    hp = two()
    with pytest.raises(tp.ChangedError, match='reading the state back after the reload failed') as err:
        ta.swap_and_persist(Opener(hp, fail_from=2), 'app', COLORS, 'green', persist=lambda c: None, reload=lambda: None)
    assert err.value.previous['active'] == 'blue' and err.value.current['active'] == 'green'


def test_state_file_failure_after_the_switch_is_a_change_and_before_it_is_not():
    def persist(client):
        raise HAProxyError('cannot write the server-state file /x: Permission denied')
    hp = two()
    with pytest.raises(tp.ChangedError, match='writing the server-state file failed') as err:
        ta.swap_and_persist(Opener(hp), 'app', COLORS, 'green', persist=persist, reload=lambda: None)
    assert err.value.current['active'] == 'green'
    with pytest.raises(HAProxyError) as err:   # the same switch again changes nothing: a plain failure
        ta.swap_and_persist(Opener(hp), 'app', COLORS, 'green', persist=persist)
    assert not isinstance(err.value, tp.ChangedError)


def test_reload_that_loses_the_switch_is_a_change():
    hp = two()

    def reload():   # a new worker that did not load the state file: the configuration's states
        hp.state['blue1']['admin'] = 'ready'
        hp.state['green1']['admin'] = 'ready'
    with pytest.raises(tp.ChangedError, match='did not keep the switched state for blue1') as err:
        ta.swap_and_persist(Opener(hp), 'app', COLORS, 'green', persist=lambda c: None, reload=reload)
    assert err.value.current['servers']['blue1'] == srv('ready', 100)


def test_swap_and_persist_reloads_only_after_a_change_and_never_in_check_mode():
    hp = two()
    reloads, persisted = [], []
    res = ta.swap_and_persist(Opener(hp), 'app', COLORS, 'green', persist=persisted.append, reload=lambda: reloads.append(1))
    assert res['changed'] and reloads == [1] and len(persisted) == 1 and res['current']['active'] == 'green'
    res = ta.swap_and_persist(Opener(hp), 'app', COLORS, 'green', persist=persisted.append, reload=lambda: reloads.append(1))
    assert not res['changed'] and reloads == [1] and len(persisted) == 2
    res = ta.swap_and_persist(Opener(hp), 'app', COLORS, 'blue', check_mode=True, persist=persisted.append,
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
    with pytest.raises(tp.ChangedError, match='no complete reply.*after setting blue1 to drain') as err:
        ta.execute_drain(hp, 'app', ['blue1'], timeout=3, interval=1, clock=clock.clock, sleep=clock.sleep)
    assert err.value.changed is True and isinstance(err.value.cause, HAProxyConnectionError)
    assert hp.state['blue1']['admin'] == 'drain'


def test_socket_error_with_nothing_changed_is_raised_as_it_is():
    hp = two(blue=('drain', 100, True))

    def lose_the_socket(fake):
        raise HAProxyConnectionError('gone')
    hp.session_script = lose_the_socket
    with pytest.raises(HAProxyConnectionError):
        ta.execute_drain(hp, 'app', ['blue1'], timeout=3, interval=1, sleep=lambda s: None)


def test_failure_setting_maint_after_the_drain_is_a_change():
    hp = two(blue=('drain', 100, True))   # already drained: only the maint step changes something
    original = hp.set_server_state

    def refuse_maint(backend, server, state):
        if server == 'green1':
            raise HAProxyCommandError('set server', 'Permission denied')
        original(backend, server, state)
    hp.set_server_state = refuse_maint
    with pytest.raises(tp.ChangedError, match='after setting blue1 to maint'):
        ta.execute_drain(hp, 'app', ['blue1', 'green1'], timeout=0, interval=1)


def test_drain_timeout_carries_whether_it_drained():
    hp = two()
    hp.state['blue1']['scur'] = 2
    clock = FakeClock()
    with pytest.raises(tp.DrainTimeout) as err:
        ta.execute_drain(hp, 'app', ['blue1'], timeout=1, interval=1, clock=clock.clock, sleep=clock.sleep)
    assert err.value.changed is True
    with pytest.raises(tp.DrainTimeout) as err:
        ta.execute_drain(hp, 'app', ['blue1'], timeout=1, interval=1, clock=clock.clock, sleep=clock.sleep)
    assert err.value.changed is False
