# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a traffic plan to HAProxy: switch (execute_swap, swap_and_persist) and drain (execute_drain). No Ansible import.

The plans come from traffic_plan; every read and write goes through the runtime client passed in
(haproxy_runtime.RuntimeClient, or the unit tests' in-memory stand-in) and the optional persist/reload
callables, so this module opens no socket and runs no process itself.

The client's servers() gives objects with ``admin_state`` ('ready' | 'drain' | 'maint'), ``weight``,
``passing`` (up and passing checks), ``settled``, ``scur``, ``qcur`` and ``as_dict()`` - haproxy_runtime.Server,
or anything shaped like it.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.zdt.bluegreen.plugins.module_utils.traffic_plan import (
    ChangedError, DrainTimeout, SwitchError, check_guardrails, describe, drain_actions, plan_swap, validate_colors,
    wait_drained,
)


def _views(servers):
    return dict((name, srv.as_dict()) for name, srv in servers.items())


def _settle(client, backend, names, timeout, clock, sleep, poll=0.2):
    """Wait (bounded) until the given servers' health is no longer between its bounds; return the fresh servers."""
    deadline = clock() + timeout
    while True:
        servers = client.servers(backend)
        if all(servers[n].settled for n in names) or clock() >= deadline:
            return servers
        sleep(poll)


def _read_back(client, backend, colors, prefer):
    """Best effort after a failure: the colors' describe() view as HAProxy has it now, or None."""
    try:
        return describe(colors, _views(client.servers(backend)), prefer=prefer)
    except Exception:   # the failure is what gets reported; an unreadable state just stays unknown
        return None


def _format_actions(actions):
    return ', '.join('%s %s %s' % (name, kind, value) for name, kind, value in actions) or 'none'


def execute_swap(client, backend, colors, active, weight=100, force=False, check_mode=False, timeout=10.0,
                 clock=time.monotonic, sleep=time.sleep):
    """Plan, guard and (unless check_mode) apply a switch. Returns a dict with changed, previous, current,
    desired, actions and warnings. Raises SwitchError/GuardrailError or HAProxy errors when nothing was changed,
    ChangedError when a step failed after something was changed."""
    servers = client.servers(backend)
    validate_colors(colors, active, weight, servers)
    previous = describe(colors, _views(servers))
    desired, actions = plan_swap(colors, active, weight, _views(servers))
    warnings = []
    original_admin = dict((name, srv.admin_state) for name, srv in servers.items())

    # Servers that will take traffic but sit in maint have no fresh health: HAProxy assumes them up the moment
    # they leave maint. Put them to drain (checks run, no new traffic) and let the checks settle before judging.
    wake = [n for n, want in desired.items() if want['admin_state'] == 'ready' and servers[n].admin_state == 'maint']
    woken = []
    try:
        if wake and not check_mode:
            for name in wake:
                client.set_server_state(backend, name, 'drain')
                woken.append(name)
        if woken or any(not servers[n].settled for n in colors[active]):
            if not check_mode:
                servers = _settle(client, backend, [n for n in desired if desired[n]['admin_state'] == 'ready'], timeout, clock, sleep)
        health = {}
        for name, srv in servers.items():
            passing = srv.passing
            if check_mode and name in wake:
                passing = True
                warnings.append('check mode: %s is in maint, its health is only known after it leaves maint' % name)
            health[name] = {'passing': passing, 'admin_state': original_admin[name]}
        warnings.extend(check_guardrails(colors, active, desired, health, force=force))
    except Exception as exc:
        restored = []
        try:
            for name in woken:
                client.set_server_state(backend, name, 'maint')
                restored.append(name)
        except Exception as again:
            left = [n for n in woken if n not in restored]
            raise ChangedError('%s; putting %s back to maint failed too (left in drain): %s' % (exc, ', '.join(left), again),
                               cause=exc, previous=previous, current=_read_back(client, backend, colors, active),
                               warnings=warnings)
        raise

    if check_mode:
        current = describe(colors, dict((n, desired.get(n, v)) for n, v in _views(servers).items()), prefer=active)
        return {'changed': bool(actions), 'previous': previous, 'current': current, 'desired': desired,
                'actions': actions, 'warnings': warnings}

    for index, (name, kind, value) in enumerate(actions):
        try:
            if kind == 'weight':
                client.set_server_weight(backend, name, value)
            else:
                client.set_server_state(backend, name, value)
        except Exception as exc:
            applied = actions[:index]
            if not applied and not woken:
                raise   # nothing changed yet
            raise ChangedError('%s (the switch was applied in part: %s%s)'
                               % (exc, _format_actions(applied), '; woken from maint to drain: %s' % ', '.join(woken) if woken else ''),
                               cause=exc, previous=previous, current=_read_back(client, backend, colors, active),
                               applied=applied, warnings=warnings)
    changed = bool(actions) or bool(woken)
    try:
        after = client.servers(backend)
    except Exception as exc:
        if not changed:
            raise
        raise ChangedError('the switch was applied (%s), but reading it back failed: %s' % (_format_actions(actions), exc),
                           cause=exc, previous=previous, current=_read_back(client, backend, colors, active),
                           applied=actions, warnings=warnings)
    current = describe(colors, _views(after), prefer=active)
    wrong = sorted(n for n in desired if after[n].as_dict() != desired[n])
    if wrong:
        message = ('HAProxy did not take the new state for %s: wanted %s, has %s'
                   % (', '.join(wrong), dict((n, desired[n]) for n in wrong), dict((n, after[n].as_dict()) for n in wrong)))
        if not changed:
            raise SwitchError(message)
        raise ChangedError(message, previous=previous, current=current, applied=actions, warnings=warnings)
    return {'changed': changed, 'previous': previous, 'current': current, 'desired': desired,
            'actions': actions, 'warnings': warnings}


def swap_and_persist(open_client, backend, colors, active, weight=100, force=False, check_mode=False, timeout=10.0,
                     persist=None, reload=None, clock=time.monotonic, sleep=time.sleep):
    """execute_swap() on a client from open_client() (a context manager), then, unless check_mode:
    persist(client) when given (the server-state file, written whether or not the switch changed something), and
    reload() when given and the switch changed something, followed by a check on a fresh client that the new
    worker kept the switched state. Returns execute_swap()'s result.

    Any failure after the switch changed something raises ChangedError carrying previous and the current state
    as far as it could be read; failures before that propagate unchanged (nothing was changed)."""
    with open_client() as client:
        result = execute_swap(client, backend, colors, active, weight=weight, force=force, check_mode=check_mode,
                              timeout=timeout, clock=clock, sleep=sleep)
        if check_mode:
            return result

        def failed(step, exc, current=None):
            return ChangedError('the switch was applied, but %s failed: %s' % (step, exc), cause=exc,
                                previous=result['previous'], current=current or result['current'],
                                applied=result['actions'], warnings=result['warnings'])
        if persist is not None:
            try:
                persist(client)
            except Exception as exc:
                if not result['changed']:
                    raise
                raise failed('writing the server-state file', exc, _read_back(client, backend, colors, active))
    if not result['changed'] or reload is None:
        return result
    try:
        reload()
    except Exception as exc:
        raise failed('the reload', exc, _read_back_fresh(open_client, backend, colors, active))
    try:
        with open_client() as client:
            after = client.servers(backend)
    except Exception as exc:
        raise failed('reading the state back after the reload', exc)
    current = describe(colors, _views(after), prefer=active)
    lost = sorted(n for n, want in result['desired'].items() if n not in after or after[n].as_dict() != want)
    if lost:
        raise ChangedError('HAProxy reloaded, but the new worker did not keep the switched state for %s (is '
                           'load-server-state-from-file set and server-state-file = state_file?)' % ', '.join(lost),
                           previous=result['previous'], current=current, applied=result['actions'], warnings=result['warnings'])
    result['current'] = current
    return result


def _read_back_fresh(open_client, backend, colors, prefer):
    try:
        with open_client() as client:
            return _read_back(client, backend, colors, prefer)
    except Exception:
        return None


def execute_drain(client, backend, names, timeout=300.0, interval=1.0, on_timeout='fail', maint=True, check_mode=False,
                  clock=time.monotonic, sleep=time.sleep):
    """Drain, wait for zero current and queued sessions, then maint. Returns changed, waited, sessions, shutdown, cut,
    before, after, warnings. Raises DrainTimeout (on_timeout=fail; the servers stay in drain; its ``changed`` says
    whether this run drained them), ChangedError for any other failure after an admin state was changed, and
    SwitchError or HAProxy errors when nothing was changed."""
    if on_timeout not in ('fail', 'shutdown'):
        raise SwitchError('on_timeout must be fail or shutdown, got %r' % (on_timeout,))
    servers = client.servers(backend)
    missing = [n for n in names if n not in servers]
    if missing:
        raise SwitchError('No such server in backend %s: %s (it has: %s)' % (backend, ', '.join(missing), ', '.join(sorted(servers))))
    before = dict((n, servers[n].admin_state) for n in names)
    to_drain = drain_actions(dict((n, {'admin_state': s}) for n, s in before.items()), names)
    final_state = 'maint' if maint else None
    after = dict((n, final_state or ('drain' if n in to_drain else before[n])) for n in names)
    result = {'changed': after != before, 'waited': 0.0, 'shutdown': False, 'cut': {}, 'warnings': [],
              'before': before, 'after': after,
              'sessions': dict((n, servers[n].scur) for n in names)}
    if check_mode:
        return result

    result['changed'] = False
    done = []   # admin state changes made so far, for the message of a later failure
    try:
        _drain_and_wait(client, backend, names, before, to_drain, timeout, interval, on_timeout, maint, result, done,
                        clock, sleep)
    except DrainTimeout as exc:
        exc.changed = result['changed']
        raise
    except Exception as exc:
        if not result['changed']:
            raise
        raise ChangedError('%s (after setting %s)' % (exc, ', '.join(done)), cause=exc, warnings=result['warnings'])
    return result


def _drain_and_wait(client, backend, names, before, to_drain, timeout, interval, on_timeout, maint, result, done, clock, sleep):
    for name in to_drain:
        client.set_server_state(backend, name, 'drain')
        result['changed'] = True
        done.append('%s to drain' % name)

    def counts():
        return client.session_counts(backend, names)

    try:
        waited, last, _polls = wait_drained(counts, timeout, interval, clock=clock, sleep=sleep)
    except DrainTimeout as exc:
        if on_timeout == 'fail':
            raise
        busy = sorted(n for n, c in exc.counts.items() if c[0] or c[1])
        for name in busy:
            client.shutdown_sessions(backend, name)
        result['shutdown'] = True
        # the sessions cut: in HTTP mode each is a request in flight that gets a 502
        result['cut'] = dict((n, exc.counts[n][0] + exc.counts[n][1]) for n in busy)
        result['warnings'].append('drain timed out after %.1fs; shut down the sessions of %s (%s)'
                                  % (exc.waited, ', '.join(busy), ', '.join('%s: %d' % (n, exc.counts[n][0]) for n in busy)))
        waited = exc.waited
        try:
            # sessions end within a moment of the shutdown; report what is left after a short bounded wait
            _w, last, _p = wait_drained(counts, max(interval, 2.0), min(interval, 0.2), clock=clock, sleep=sleep)
        except DrainTimeout as again:
            last = again.counts
    result['waited'] = round(waited, 3)
    result['sessions'] = dict((n, last[n][0]) for n in names)
    if maint:
        for name in names:
            if before[name] != 'maint':
                client.set_server_state(backend, name, 'maint')
                result['changed'] = True
                done.append('%s to maint' % name)
