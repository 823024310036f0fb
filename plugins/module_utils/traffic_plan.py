# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning for blue/green traffic switching and draining. No Ansible import, no I/O.

Servers come in as plain dicts ({name: {'admin_state': 'ready' | 'drain' | 'maint', 'weight': n}}); the
one function that waits, wait_drained, is handed its session counts, clock and sleep. Carrying a plan
out against HAProxy is traffic_apply's job.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import math
import time

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_runtime import MAX_WEIGHT

FULL_WEIGHT = 100   # per-server weight of the active color when it takes all the traffic (equal server counts)


class SwitchError(ZdtError):
    """Invalid switch arguments (nothing was changed)."""


class GuardrailError(ZdtError):
    """The switch would leave the backend unable to serve, or activate a color that fails its checks."""


class DrainTimeout(ZdtError):
    """Servers still had sessions at the deadline; ``counts`` is {server: (scur, qcur)}."""

    def __init__(self, counts, waited):
        self.counts = counts
        self.waited = waited
        busy = ', '.join('%s: %d current, %d queued' % (name, c[0], c[1]) for name, c in sorted(counts.items()) if c[0] or c[1])
        super(DrainTimeout, self).__init__('servers still busy after %.1fs: %s' % (waited, busy))


class ChangedError(ZdtError):
    """A step failed after the task had already changed HAProxy: the module reports ``changed=True``.

    ``cause`` is the original exception; ``previous`` and ``current`` are describe() views of the colors before the
    task and as read back after the failure (None when unknown or not read); ``applied`` the actions that were made;
    ``warnings`` those collected before the failure.
    """

    changed = True

    def __init__(self, message, cause=None, previous=None, current=None, applied=None, warnings=None):
        self.cause = cause
        self.previous = previous
        self.current = current
        self.applied = list(applied or [])
        self.warnings = list(warnings or [])
        super(ChangedError, self).__init__(message)


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def _lcm(a, b):
    return a * b // _gcd(a, b)


def validate_colors(colors, active, weight, backend_servers=None):
    """Check the arguments; return the name of the other color (None when there is none). Raises SwitchError."""
    if not isinstance(colors, dict) or not colors:
        raise SwitchError('colors must be a non-empty dict of color -> list of server names')
    seen = {}
    for color, servers in colors.items():
        if not isinstance(servers, list) or not servers:
            raise SwitchError('colors.%s must be a non-empty list of server names' % color)
        for server in servers:
            if server in seen:
                raise SwitchError('server %s is listed in both colors %s and %s' % (server, seen[server], color))
            seen[server] = color
    if active not in colors:
        raise SwitchError('active color %r is not one of the colors (%s)' % (active, ', '.join(sorted(colors))))
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
        raise SwitchError('weight must be an integer percentage between 1 and 100, got %r' % (weight,))
    others = [c for c in colors if c != active]
    if weight < 100 and len(others) != 1:
        raise SwitchError('a canary (weight < 100) needs exactly two colors, got %d' % len(colors))
    if backend_servers is not None:
        missing = sorted(s for s in seen if s not in backend_servers)
        if missing:
            raise SwitchError('No such server in the backend: %s (it has: %s)' % (', '.join(missing), ', '.join(sorted(backend_servers))))
    return others[0] if len(others) == 1 else None


def derive_weights(active_count, other_count, weight):
    """Per-server HAProxy weights (active, other) so that the active color gets ``weight`` % of the traffic
    whatever the two colors' server counts. ``other`` is None when weight is 100 (the other color drains)."""
    if weight >= 100 or not other_count:
        return FULL_WEIGHT, None
    lcm = _lcm(active_count, other_count)
    w_active = weight * lcm // active_count
    w_other = (100 - weight) * lcm // other_count
    if max(w_active, w_other) > MAX_WEIGHT:
        g = _gcd(w_active, w_other)
        w_active, w_other = w_active // g, w_other // g
    if max(w_active, w_other) > MAX_WEIGHT:
        w_active, w_other = _best_fit(active_count, other_count, weight)
    return w_active, w_other


SHARE_TOLERANCE = 1.0   # percentage points a derived split may miss the asked share by


def _share(w_active, active_count, w_other, other_count):
    return 100.0 * w_active * active_count / (w_active * active_count + w_other * other_count)


def _best_fit(active_count, other_count, weight):
    """The weights in 1..256 whose share is closest to weight; SwitchError when none is within SHARE_TOLERANCE."""
    ratio = float(100 - weight) * active_count / (float(weight) * other_count)
    best = None
    for w_active in range(1, MAX_WEIGHT + 1):
        w_other = min(MAX_WEIGHT, max(1, int(round(w_active * ratio))))
        error = abs(_share(w_active, active_count, w_other, other_count) - weight)
        if best is None or error < best[0] - 1e-9:
            best = (error, w_active, w_other)
    if best[0] > SHARE_TOLERANCE:
        raise SwitchError('a %d %% share for %d server(s) against %d cannot be expressed with HAProxy weights 1..%d '
                          '(closest: %.1f %%)' % (weight, active_count, other_count, MAX_WEIGHT,
                                                  _share(best[1], active_count, best[2], other_count)))
    return best[1], best[2]


def share_of(colors, servers):
    """{color: summed weight of its ready servers}."""
    shares = {}
    for color, names in colors.items():
        shares[color] = sum(servers[n]['weight'] for n in names if servers[n]['admin_state'] == 'ready')
    return shares


def describe(colors, servers, prefer=None):
    """The colors' state as the modules report it, {active, weight, servers}: ``active`` is the color with the
    larger share, ``weight`` its share in percent (0 with no ready server), ``servers`` the admin state and weight of
    every server of the colors. servers: {name: {admin_state, weight}}."""
    shares = share_of(colors, servers)
    total = sum(shares.values())
    if total <= 0:
        active, weight = None, 0
    else:
        best = max(shares.values())
        leaders = [c for c in colors if shares[c] == best]
        active = prefer if prefer in leaders else sorted(leaders)[0]
        weight = int(round(100.0 * shares[active] / total))
    names = [n for c in colors for n in colors[c]]
    return {'active': active, 'weight': weight,
            'servers': dict((n, {'admin_state': servers[n]['admin_state'], 'weight': servers[n]['weight']}) for n in names)}


def plan_swap(colors, active, weight, servers):
    """Desired {server: {admin_state, weight}} and the ordered actions to get there.

    servers: {name: {'admin_state', 'weight'}} (current). Actions are (server, 'weight', n) and (server, 'state', s):
    servers that will take traffic are made ready first (weight before state), servers losing traffic change last,
    so the backend never has fewer serving servers mid-switch than at either end.
    """
    other = validate_colors(colors, active, weight, servers)
    w_active, w_other = derive_weights(len(colors[active]), len(colors[other]) if other else 0, weight)
    desired = {}
    for color, names in colors.items():
        for name in names:
            current = servers[name]
            if color == active:
                desired[name] = {'admin_state': 'ready', 'weight': w_active}
            elif w_other is not None:
                desired[name] = {'admin_state': 'ready', 'weight': w_other}
            else:
                # full switch: the old color drains; its weight is kept so a rollback finds it as it was
                desired[name] = {'admin_state': 'drain', 'weight': current['weight']}
    gaining, losing = [], []
    for name in [n for c in colors for n in colors[c]]:
        cur, want = servers[name], desired[name]
        steps = []
        if cur['weight'] != want['weight']:
            steps.append((name, 'weight', want['weight']))
        if cur['admin_state'] != want['admin_state']:
            steps.append((name, 'state', want['admin_state']))
        if not steps:
            continue
        gains = want['admin_state'] == 'ready' and (cur['admin_state'] != 'ready' or want['weight'] > cur['weight'])
        (gaining if gains else losing).extend(steps)
    return desired, gaining + losing


def check_guardrails(colors, active, desired, health, force=False):
    """Refuse a switch that would hurt.

    health: {name: {'passing': bool, 'admin_state': str}} for every server of the backend (also those in no color).
    Without force: every server of the active color must pass its checks.
    Always (force or not): if some server is serving now (ready and passing), at least one must still be after the switch.
    Returns a list of warnings (for what force let through).
    """
    warnings = []
    failing = sorted(n for n in colors[active] if not health[n]['passing'])
    if failing and not force:
        raise GuardrailError('refusing to activate color %s: server(s) %s are down or failing health checks (use force to override)'
                             % (active, ', '.join(failing)))
    if failing:
        warnings.append('force: activating color %s although %s fail(s) health checks' % (active, ', '.join(failing)))

    def serving(state_of):
        return sorted(n for n in health if state_of(n) == 'ready' and health[n]['passing'])

    before = serving(lambda n: health[n]['admin_state'])
    after = serving(lambda n: desired[n]['admin_state'] if n in desired else health[n]['admin_state'])
    if before and not after:
        raise GuardrailError('refusing the switch: it would leave the backend without a server that is both ready and passing '
                             'health checks (serving now: %s)' % ', '.join(before))
    if not after:
        warnings.append('no server of the backend is ready and passing health checks')
    return warnings


def diff_states(before, after):
    """Ansible diff dict from two describe() results."""
    return {'before': before, 'after': after}


# ---------------------------------------------------------------- draining

def drain_actions(servers, names):
    """Servers among names that must be put to drain first: those that are ready (maint ones stay maint)."""
    return [n for n in names if servers[n]['admin_state'] == 'ready']


def poll_schedule(timeout, interval):
    """Offsets (s from the start) of the polls: one at 0, then every interval, the last one at the deadline.
    The count is exact: ceil(timeout / interval) + 1 polls (a zero timeout polls once), computed on the integer
    number of whole intervals so that float noise (0.9 / 0.3 = 3.0000000000000004) adds no poll."""
    if interval <= 0:
        raise SwitchError('interval must be > 0')
    if timeout < 0:
        raise SwitchError('timeout must be >= 0')
    timeout = float(timeout)
    whole = int(math.floor(timeout / interval + 1e-9))   # whole intervals that fit into the timeout
    offsets = [k * interval for k in range(whole + 1)]
    if timeout - whole * interval > 1e-9 * interval:
        offsets.append(timeout)      # a partial last interval: one more poll, at the deadline
    else:
        offsets[-1] = timeout        # the last whole interval ends at the deadline
    return offsets


def wait_drained(get_counts, timeout, interval, clock=time.monotonic, sleep=time.sleep):
    """Poll get_counts() -> {server: (scur, qcur)} until every server has 0 current and 0 queued sessions.

    Polls follow poll_schedule(timeout, interval) against clock(). Returns (waited_seconds, counts, polls).
    Raises DrainTimeout (with the last counts) when the deadline passes first.
    """
    start = clock()
    polls = 0
    counts = {}
    for offset in poll_schedule(timeout, interval):
        delay = start + offset - clock()
        if delay > 0:
            sleep(delay)
        counts = get_counts()
        polls += 1
        if all(scur == 0 and qcur == 0 for scur, qcur in counts.values()):
            return clock() - start, counts, polls
    raise DrainTimeout(counts, clock() - start)


def resolve_drain_servers(servers=None, colors=None, color=None):
    """drain_wait's `servers` or `colors` + `color` -> list of names."""
    if servers:
        if colors or color:
            raise SwitchError('give either servers or colors + color, not both')
        return list(servers)
    if not colors or not color:
        raise SwitchError('give servers, or colors and color')
    if color not in colors or not colors[color]:
        raise SwitchError('color %r is not one of the colors (%s) or has no servers' % (color, ', '.join(sorted(colors))))
    return list(colors[color])


# ---------------------------------------------------------------- several load balancers in step

def traffic_view(state):
    """What must be equal on load balancers in step, from a describe() view: the active color, its share, and per
    server its admin state, with its weight when it takes traffic (a drained or maint server's weight sends nothing)."""
    servers = {}
    for name, server in (state.get('servers') or {}).items():
        admin = server.get('admin_state')
        servers[name] = (admin, server.get('weight')) if admin == 'ready' else (admin, None)
    return {'active': state.get('active'), 'weight': state.get('weight'), 'servers': servers}


def format_state(state, color=None):
    """'green 10 % (blue1 ready 90, green1 ready 10)': what a load balancer has, for messages. A half-and-half split
    names color, when given (the color the step is about), rather than whichever describe() took for active."""
    view = traffic_view(state)
    servers = ', '.join('%s %s%s' % (name, admin, '' if weight is None else ' %s' % weight)
                        for name, (admin, weight) in sorted(view['servers'].items()))
    if color is not None and view['active'] is not None and view['weight'] == 50:
        share = '%s 50 %%' % color
    else:
        share = '%s %s %%' % (view['active'] or 'no color', view['weight'])
    return share + (' (%s)' % servers if servers else '')


def _share_of(view, color):
    """The share of color in a view of two colors (at 50 % either color is the view's `active`)."""
    if view['active'] is None:
        return 0
    return view['weight'] if view['active'] == color else 100 - view['weight']


def compare_load_balancers(states, active=None, weight=None):
    """Problems that keep the load balancers from being in step; [] when every one of them holds the same.

    states: {load balancer: describe() view, or {'error': why it could not be read}}. With active and weight (the
    step asked), a load balancer holding another color or share is a problem too, even when they all agree. Every
    problem names the load balancers and what each has."""
    problems = []
    readable = {}
    for name in sorted(states):
        state = states[name] or {}
        if state.get('error') or 'servers' not in state:
            problems.append('%s could not be read back: %s' % (name, state.get('error') or 'no state'))
        else:
            readable[name] = state
    groups = []   # [(view, [names])] in the order first seen
    for name, state in sorted(readable.items()):
        view = traffic_view(state)
        for seen, names in groups:
            if seen == view:
                names.append(name)
                break
        else:
            groups.append((view, [name]))
    if len(groups) > 1:
        problems.append('the load balancers are not in step%s: %s' % (
            ' (the step asks %s %s %%)' % (active, weight) if active is not None else '', '; '.join(
                '%s %s %s' % (', '.join(names), 'has' if len(names) == 1 else 'have', format_state(readable[names[0]], active))
                for _view, names in groups)))
    elif groups and active is not None and _share_of(groups[0][0], active) != weight:
        names = groups[0][1]
        problems.append('%s %s %s, the step asks %s %s %%' % (
            ', '.join(names), 'holds' if len(names) == 1 else 'hold', format_state(readable[names[0]], active), active, weight))
    return problems


def _known_previous(switched, read_back):
    """{load balancer: (active, weight)} that each had before the step, where known: the switch's own `previous`, else
    the read-back of a load balancer the switch changed nothing on."""
    known = {}
    for name in set(switched) | set(read_back):
        result = switched.get(name) or {}
        previous = result.get('previous')
        if not previous and not result.get('changed'):
            previous = (read_back.get(name) or {}).get('previous')
        if previous and previous.get('active'):
            known[name] = (previous['active'], previous['weight'])
    return known


def plan_step_revert(load_balancers, switched, read_back, previous=None):
    """Where each load balancer goes back to when a step failed: {name: {'active', 'weight'} or None}.

    previous: the previous step's {active, weight} (every load balancer goes back to it); None for the first step,
    where each goes back to what it had before the step (the switch's `previous`), and one whose state before the
    step is not known goes to what most of the others had (None when no load balancer's is known).
    switched, read_back: {name: registered result} of the step's switch and of its read-back (a check-mode switch)."""
    if previous:
        return dict((name, {'active': previous['active'], 'weight': int(previous['weight'])}) for name in load_balancers)
    known = _known_previous(switched or {}, read_back or {})
    counts = {}
    for state in known.values():
        counts[state] = counts.get(state, 0) + 1
    common = max(sorted(counts), key=lambda s: counts[s]) if counts else None
    plan = {}
    for name in load_balancers:
        state = known.get(name, common)
        plan[name] = {'active': state[0], 'weight': state[1]} if state else None
    return plan


def step_failure_message(active, weight, problems, revert, reverted):
    """The failure of a step that was put back: its problems, where every load balancer went back to, and which
    could not be put back (and why). revert: plan_step_revert(); reverted: {name: the put-back switch's result}."""
    back, left = [], []
    for name in sorted(revert):
        target, result = revert[name], reverted.get(name) or {}
        if target is None:
            left.append('%s (nothing known to go back to)' % name)
        elif result.get('failed'):
            left.append('%s (%s)' % (name, result.get('msg') or 'failed'))
        elif result.get('skipped'):
            left.append('%s (not tried: %s)' % (name, result.get('skip_reason') or 'skipped'))
        else:
            back.append('%s to %s %s %%' % (name, target['active'], target['weight']))
    sentences = ['the step to %s %s %% failed: %s' % (active, weight, '; '.join(problems) or 'see above')]
    if back:
        sentences.append('Put back: %s' % ', '.join(back))
    if left:
        sentences.append('NOT put back: %s; the load balancers may be split: a rerun puts them in step' % '; '.join(left))
    return '. '.join(sentences)


def judge_step(load_balancers, active, weight, switched, read_back, previous=None):
    """A traffic step over several load balancers, from the registered results of its switch and of the read-back
    that followed (a check-mode switch on each, whose `previous` is what HAProxy holds).

    Returns {in_step, problems, states, revert}: in_step is True when every switch succeeded and every load balancer
    holds the step's color and share with the same server states; problems name the load balancers and what each
    has; revert is plan_step_revert() (where each goes back to when the step is not in step)."""
    if not load_balancers:
        raise SwitchError('load_balancers must name at least one load balancer')
    switched, read_back = switched or {}, read_back or {}
    problems = []
    for name in load_balancers:
        result = switched.get(name)
        if not isinstance(result, dict) or result.get('skipped'):
            problems.append('%s was not switched (no result of its switch)' % name)
        elif result.get('failed'):
            problems.append('the switch failed on %s: %s' % (name, result.get('msg') or 'no message'))
    states = {}
    for name in load_balancers:
        result = read_back.get(name) or {}
        if isinstance(result.get('previous'), dict) and not result.get('failed'):
            states[name] = result['previous']
        else:
            states[name] = {'error': result.get('msg') or 'no read-back'}
    problems.extend(compare_load_balancers(states, active, weight))
    return {'in_step': not problems, 'problems': problems, 'states': states,
            'revert': plan_step_revert(load_balancers, switched, read_back, previous)}
