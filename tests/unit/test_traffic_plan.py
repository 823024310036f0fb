"""Unit tests for the pure switch/drain planning (traffic_plan)."""
import math

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils import traffic_plan as tp
from zdt_lab.traffic_fakes import COLORS, FakeClock, srv


def share(weights_a, count_a, weights_o, count_o):
    return 100.0 * weights_a * count_a / (weights_a * count_a + weights_o * count_o)


# ---------------------------------------------------------------- weights

@pytest.mark.parametrize('n_active', [1, 2, 3, 5, 7])
@pytest.mark.parametrize('n_other', [1, 2, 3, 4, 9])
@pytest.mark.parametrize('weight', [1, 5, 10, 25, 33, 50, 75, 90, 99])
def test_derived_weights_hold_the_share_whatever_the_counts(n_active, n_other, weight):
    feasible = any(abs(share(a, n_active, o, n_other) - weight) <= 1.0 for a in range(1, 257) for o in range(1, 257))
    if not feasible:   # e.g. 1 % on 7 servers against 1: needs a per-server ratio beyond 256:1
        with pytest.raises(tp.SwitchError, match='cannot be expressed'):
            tp.derive_weights(n_active, n_other, weight)
        return
    w_a, w_o = tp.derive_weights(n_active, n_other, weight)
    assert 1 <= w_a <= 256 and 1 <= w_o <= 256
    # exact when the integer weights fit; within 1 percentage point when they had to be fitted
    assert abs(share(w_a, n_active, w_o, n_other) - weight) <= 1.0


def test_derived_weights_are_readable_for_equal_counts():
    assert tp.derive_weights(1, 1, 10) == (10, 90)
    assert tp.derive_weights(2, 2, 25) == (25, 75)
    assert tp.derive_weights(1, 2, 10) == (20, 90)     # green1 gets 20/200 = 10 %


def test_full_weight_drains_the_other_color():
    assert tp.derive_weights(2, 3, 100) == (100, None)


def test_plan_full_switch_orders_gaining_before_losing():
    servers = {'blue1': srv('ready', 100), 'green1': srv('drain', 100)}
    desired, actions = tp.plan_swap(COLORS, 'green', 100, servers)
    assert desired == {'green1': srv('ready', 100), 'blue1': srv('drain', 100)}
    assert actions == [('green1', 'state', 'ready'), ('blue1', 'state', 'drain')]


def test_plan_canary_sets_weights_before_ready_and_keeps_other_ready():
    servers = {'blue1': srv('ready', 100), 'green1': srv('maint', 100)}
    desired, actions = tp.plan_swap(COLORS, 'green', 10, servers)
    assert desired == {'green1': srv('ready', 10), 'blue1': srv('ready', 90)}
    assert actions == [('green1', 'weight', 10), ('green1', 'state', 'ready'), ('blue1', 'weight', 90)]


def test_plan_idempotent():
    servers = {'blue1': srv('drain', 37), 'green1': srv('ready', 100)}
    desired, actions = tp.plan_swap(COLORS, 'green', 100, servers)
    assert actions == []
    assert desired['blue1'] == srv('drain', 37)   # a drained server keeps its weight


def test_describe_reports_larger_share_as_active():
    assert tp.describe(COLORS, {'blue1': srv('ready', 90), 'green1': srv('ready', 10)}) == {
        'active': 'blue', 'weight': 90, 'servers': {'blue1': srv('ready', 90), 'green1': srv('ready', 10)}}
    assert tp.describe(COLORS, {'blue1': srv('drain', 90), 'green1': srv('ready', 10)})['active'] == 'green'
    assert tp.describe(COLORS, {'blue1': srv('drain'), 'green1': srv('maint')})['active'] is None
    tie = {'blue1': srv('ready', 50), 'green1': srv('ready', 50)}
    assert tp.describe(COLORS, tie, prefer='green')['active'] == 'green'
    assert tp.describe(COLORS, tie)['weight'] == 50


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
    with pytest.raises(tp.SwitchError, match=match):
        tp.validate_colors(colors, active, weight, {'blue1': {}, 'green1': {}})


# ---------------------------------------------------------------- guardrails

def health(**kw):
    return dict((name, {'passing': passing, 'admin_state': admin}) for name, (passing, admin) in kw.items())


def test_guardrail_refuses_a_down_color_without_force():
    h = health(blue1=(True, 'ready'), green1=(False, 'drain'))
    desired = {'green1': srv('ready'), 'blue1': srv('drain')}
    with pytest.raises(tp.GuardrailError, match='green1 are down'):
        tp.check_guardrails(COLORS, 'green', desired, h)


def test_guardrail_never_takes_the_last_serving_server_even_with_force():
    h = health(blue1=(True, 'ready'), green1=(False, 'drain'))
    desired = {'green1': srv('ready'), 'blue1': srv('drain')}
    with pytest.raises(tp.GuardrailError, match='without a server that is both ready and passing'):
        tp.check_guardrails(COLORS, 'green', desired, h, force=True)


def test_force_canary_on_a_down_color_is_allowed_while_the_other_serves():
    h = health(blue1=(True, 'ready'), green1=(False, 'drain'))
    desired = {'green1': srv('ready', 10), 'blue1': srv('ready', 90)}
    warnings = tp.check_guardrails(COLORS, 'green', desired, h, force=True)
    assert any('force' in w for w in warnings)


def test_force_when_nothing_serves_already():
    h = health(blue1=(False, 'ready'), green1=(False, 'drain'))
    desired = {'green1': srv('ready'), 'blue1': srv('drain')}
    with pytest.raises(tp.GuardrailError):
        tp.check_guardrails(COLORS, 'green', desired, h)
    assert tp.check_guardrails(COLORS, 'green', desired, h, force=True)


def test_server_outside_the_colors_counts_as_serving():
    h = health(blue1=(True, 'ready'), green1=(False, 'drain'), spare=(True, 'ready'))
    desired = {'green1': srv('ready'), 'blue1': srv('drain')}
    tp.check_guardrails(COLORS, 'green', desired, h, force=True)


# ---------------------------------------------------------------- drain polling

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
    with pytest.raises(tp.DrainTimeout) as err:
        tp.wait_drained(counts, timeout, interval, clock=clock.clock, sleep=clock.sleep)
    assert len(calls) == polls
    assert calls[0] == 100.0 and calls[-1] == pytest.approx(100.0 + timeout)   # first at once, last at the deadline
    assert err.value.counts == {'blue1': (1, 0)}
    assert 'blue1: 1 current, 0 queued' in str(err.value)


@pytest.mark.parametrize('timeout,interval', [(0.9, 0.3), (0.3, 0.1), (0.7, 0.1), (2.5, 1), (0.35, 0.1), (7.7, 1.1), (1e-3, 1e-4)])
def test_poll_schedule_ends_exactly_at_the_deadline_with_steps_of_at_most_interval(timeout, interval):
    offsets = tp.poll_schedule(timeout, interval)
    assert offsets[0] == 0 and offsets[-1] == timeout
    assert len(offsets) == int(round(math.ceil(round(timeout / interval, 6)))) + 1
    steps = [b - a for a, b in zip(offsets, offsets[1:])]
    assert all(0 < step <= interval * (1 + 1e-9) for step in steps), steps


def test_wait_drained_returns_when_scur_and_qcur_reach_zero():
    clock = FakeClock()
    seq = iter([{'a': (2, 0), 'b': (0, 0)}, {'a': (0, 1), 'b': (0, 0)}, {'a': (0, 0), 'b': (0, 0)}])
    waited, counts, polls = tp.wait_drained(lambda: next(seq), 10, 1, clock=clock.clock, sleep=clock.sleep)
    assert polls == 3 and waited == 2.0 and counts['a'] == (0, 0)


def test_resolve_drain_servers():
    assert tp.resolve_drain_servers(['a']) == ['a']
    assert tp.resolve_drain_servers(None, COLORS, 'blue') == ['blue1']
    with pytest.raises(tp.SwitchError):
        tp.resolve_drain_servers(None, COLORS, 'red')


# ---------------------------------------------------------------- several load balancers in step

def view(active, weight, **servers):
    return {'active': active, 'weight': weight,
            'servers': dict((name, {'admin_state': s[0], 'weight': s[1]}) for name, s in servers.items())}


CANARY = view('green', 10, blue1=('ready', 90), green1=('ready', 10))
BLUE = view('blue', 100, blue1=('ready', 100), green1=('drain', 100))


def test_load_balancers_holding_the_same_are_in_step():
    assert tp.compare_load_balancers({'lb1': CANARY, 'lb2': dict(CANARY)}, 'green', 10) == []
    # a drained server's weight sends nothing: two histories that left different weights on it are in step
    a = view('green', 100, blue1=('drain', 90), green1=('ready', 100))
    b = view('green', 100, blue1=('drain', 100), green1=('ready', 100))
    assert tp.compare_load_balancers({'lb1': a, 'lb2': b}, 'green', 100) == []


def test_a_difference_names_every_load_balancer_and_what_it_has():
    problems = tp.compare_load_balancers({'lb1': CANARY, 'lb2': BLUE, 'lb3': CANARY})
    assert problems == ['the load balancers are not in step: lb1, lb3 have green 10 % (blue1 ready 90, green1 ready 10); '
                        'lb2 has blue 100 % (blue1 ready 100, green1 drain)']
    # with the step's color, every load balancer's share of it (one problem, not one per group)
    problems = tp.compare_load_balancers({'lb1': CANARY, 'lb2': BLUE}, 'green', 10)
    assert problems == ['the load balancers are not in step (the step asks green 10 %): lb1 has green 10 % (blue1 ready 90, '
                        'green1 ready 10); lb2 has blue 100 % (blue1 ready 100, green1 drain)']
    # the same share with other server states is out of step too
    maint = view('green', 10, blue1=('ready', 90), green1=('ready', 10))
    maint['servers']['green2'] = {'admin_state': 'maint', 'weight': 100}
    other = view('green', 10, blue1=('ready', 90), green1=('ready', 10))
    other['servers']['green2'] = {'admin_state': 'drain', 'weight': 100}
    assert 'green2 maint' in tp.compare_load_balancers({'lb1': maint, 'lb2': other})[0]


def test_load_balancers_that_agree_on_another_state_than_the_step_asks_are_named():
    problems = tp.compare_load_balancers({'lb1': BLUE, 'lb2': BLUE}, 'green', 10)
    assert problems == ['lb1, lb2 hold blue 100 % (blue1 ready 100, green1 drain), the step asks green 10 %']
    # half and half: describe() names either color active; the share of the asked one is what counts
    half = view('blue', 50, blue1=('ready', 50), green1=('ready', 50))
    assert tp.compare_load_balancers({'lb1': half}, 'green', 50) == []
    assert tp.compare_load_balancers({'lb1': CANARY}, 'blue', 90) == []


def test_an_unreadable_load_balancer_is_a_problem_and_the_others_are_still_compared():
    problems = tp.compare_load_balancers({'lb1': CANARY, 'lb2': {'error': 'socket gone'}, 'lb3': BLUE}, 'green', 10)
    assert problems[0] == 'lb2 could not be read back: socket gone'
    assert problems[1].startswith('the load balancers are not in step (the step asks green 10 %): lb1 has green 10 %')
    assert 'lb3 has blue 100 %' in problems[1] and len(problems) == 2
    half = view('blue', 50, blue1=('ready', 50), green1=('ready', 50))
    assert tp.format_state(half, 'green') == 'green 50 % (blue1 ready 50, green1 ready 50)'
    assert tp.format_state(half) == 'blue 50 % (blue1 ready 50, green1 ready 50)'


def test_the_revert_of_a_later_step_is_the_previous_step_everywhere():
    plan = tp.plan_step_revert(['lb1', 'lb2'], {}, {}, previous={'active': 'green', 'weight': '10'})
    assert plan == {'lb1': {'active': 'green', 'weight': 10}, 'lb2': {'active': 'green', 'weight': 10}}


def test_the_revert_of_the_first_step_is_what_each_had_before_it():
    switched = {'lb1': {'changed': True, 'previous': BLUE},
                # failed before it changed anything: its read-back is its state before the step
                'lb2': {'failed': True, 'changed': False, 'msg': 'refused'},
                # failed and unreadable: what most of the others had
                'lb3': {'failed': True, 'msg': 'cannot connect'}}
    read_back = {'lb1': {'previous': CANARY}, 'lb2': {'previous': BLUE}, 'lb3': {'failed': True, 'msg': 'cannot connect'}}
    plan = tp.plan_step_revert(['lb1', 'lb2', 'lb3'], switched, read_back)
    assert plan == dict((n, {'active': 'blue', 'weight': 100}) for n in ('lb1', 'lb2', 'lb3'))
    # a switch that changed something and then failed reports its previous state itself
    switched = {'lb1': {'failed': True, 'changed': True, 'previous': view('green', 50, blue1=('ready', 50), green1=('ready', 50))}}
    assert tp.plan_step_revert(['lb1'], switched, {'lb1': {'previous': CANARY}}) == {'lb1': {'active': 'green', 'weight': 50}}
    # nothing known anywhere: nothing to go back to
    assert tp.plan_step_revert(['lb1'], {'lb1': {'failed': True}}, {'lb1': {'failed': True}}) == {'lb1': None}


def test_judge_step_in_step_and_out_of_step():
    ok = tp.judge_step(['lb1', 'lb2'], 'green', 10, {'lb1': {'changed': True, 'previous': BLUE}, 'lb2': {'changed': True, 'previous': BLUE}},
                       {'lb1': {'previous': CANARY}, 'lb2': {'previous': CANARY}})
    assert ok['in_step'] and ok['problems'] == [] and ok['states']['lb2'] == CANARY
    bad = tp.judge_step(['lb1', 'lb2'], 'green', 10,
                        {'lb1': {'changed': True, 'previous': BLUE}, 'lb2': {'failed': True, 'msg': 'cannot connect to HAProxy'}},
                        {'lb1': {'previous': CANARY}, 'lb2': {'failed': True, 'msg': 'cannot connect to HAProxy'}})
    assert not bad['in_step']
    assert bad['problems'][:2] == ['the switch failed on lb2: cannot connect to HAProxy',
                                   'lb2 could not be read back: cannot connect to HAProxy']
    assert bad['revert'] == {'lb1': {'active': 'blue', 'weight': 100}, 'lb2': {'active': 'blue', 'weight': 100}}
    skipped = tp.judge_step(['lb1'], 'green', 10, {'lb1': {'skipped': True}}, {'lb1': {'previous': CANARY}})
    assert skipped['problems'] == ['lb1 was not switched (no result of its switch)']
    with pytest.raises(tp.SwitchError, match='at least one'):
        tp.judge_step([], 'green', 10, {}, {})


def test_the_failure_message_says_what_was_put_back_and_what_not():
    revert = {'lb1': {'active': 'blue', 'weight': 100}, 'lb2': {'active': 'blue', 'weight': 100}, 'lb3': None}
    reverted = {'lb1': {'changed': True}, 'lb2': {'failed': True, 'msg': 'cannot connect'}}
    message = tp.step_failure_message('green', 10, ['the switch failed on lb2: cannot connect'], revert, reverted)
    assert message == ('the step to green 10 % failed: the switch failed on lb2: cannot connect. Put back: lb1 to blue 100 %. '
                       'NOT put back: lb2 (cannot connect); lb3 (nothing known to go back to); the load balancers may be '
                       'split: a rerun puts them in step')
    assert 'NOT put back' not in tp.step_failure_message('green', 10, ['x'], {'lb1': revert['lb1']}, {'lb1': {}})
