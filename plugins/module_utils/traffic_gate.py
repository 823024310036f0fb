# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The error-rate gate of a traffic step, judged from HAProxy's per-server counters. No Ansible import.

A snapshot is one load balancer's counters for some servers of a backend at one moment, as ``haproxy_stats``
returns it (read_snapshot builds it through the runtime client it is handed; everything else here is pure)::

    {'label': 'lb1:/run/haproxy/admin.sock', 'backend': 'app', 'pid': 1234, 'started': 1796576654,
     'servers': {'green1': {'hrsp_2xx': 950, 'hrsp_5xx': 50, 'eresp': 0, 'econ': 0, ..., 'mode': 'http'}},
     'total': {...the same counters summed over the servers...}}

error_rate() takes the snapshots of every load balancer at the start of a step and at its end and computes, over
the chosen servers (the new color's) summed over the load balancers::

    rate = Δ(hrsp_5xx + eresp + econ) / Δ(responses + eresp + econ)
    responses = hrsp_2xx + hrsp_3xx + hrsp_4xx + hrsp_5xx + hrsp_other

HAProxy 2.6 counts a 502/504 it makes up after a response error (``eresp``), and a 503 after a failed last
connection attempt (``econ``), in the backend's hrsp_5xx but not in the server's, so nothing is counted twice.
``hrsp_1xx`` is left out: most 1xx answers (100 Continue, 103 Early Hints) precede the final answer of the same
request, which is counted. Retries and redispatches (``wretr``, ``wredis``) are in the snapshots, not in the rate:
the client saw no error.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import socket

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_runtime import SERVER_COUNTERS, to_int

ERROR_COUNTERS = ('hrsp_5xx', 'eresp', 'econ')
RESPONSE_COUNTERS = ('hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx', 'hrsp_5xx', 'hrsp_other')
GATE_COUNTERS = ('hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx', 'hrsp_5xx', 'hrsp_other', 'eresp', 'econ')
OUTCOMES = ('pass', 'fail', 'too_few', 'reset')
DEFAULT_MIN_REQUESTS = 20


class GateError(ZdtError):
    """The snapshots or the options cannot be judged (malformed, not matching, a TCP-mode backend ...)."""


def responses_of(counters):
    """Final answers the server sent (hrsp_2xx .. hrsp_5xx + hrsp_other)."""
    return sum(to_int(counters.get(c)) for c in RESPONSE_COUNTERS)


def errors_of(counters):
    """hrsp_5xx + eresp + econ."""
    return sum(to_int(counters.get(c)) for c in ERROR_COUNTERS)


def requests_of(counters):
    """responses + eresp + econ: every request the server was given that ended, well or not."""
    return responses_of(counters) + to_int(counters.get('eresp')) + to_int(counters.get('econ'))


def default_label(address):
    """This host's name and the socket address: tells apart load balancers on different hosts behind the same path."""
    return '%s:%s' % (socket.gethostname(), address)


def read_snapshot(client, backend, names=None, label=None):
    """One load balancer's snapshot through a haproxy_runtime.RuntimeClient (or anything shaped like it)."""
    info = client.show_info()
    counters = client.server_counters(backend, names)
    servers = {}
    total = dict((c, 0) for c in SERVER_COUNTERS)
    for name, values in counters.items():
        entry = dict(values)
        entry['responses'] = responses_of(values)
        entry['errors'] = errors_of(values)
        servers[name] = entry
        for column in SERVER_COUNTERS:
            total[column] += values[column]
    total['responses'] = responses_of(total)
    total['errors'] = errors_of(total)
    return {'label': label or default_label(client.address), 'backend': backend, 'pid': to_int(info.get('Pid')),
            'started': to_int(info.get('Start_time_sec')), 'servers': servers, 'total': total}


def _index(snapshots, which):
    """[snapshot] -> {(label, backend): snapshot}; GateError for anything that is not a snapshot, or a label twice."""
    if not isinstance(snapshots, (list, tuple)) or not snapshots:
        raise GateError('%s: expected a non-empty list of haproxy_stats results (one per load balancer), got %r'
                        % (which, type(snapshots).__name__ if snapshots else snapshots))
    index = {}
    for position, snap in enumerate(snapshots):
        if not isinstance(snap, dict) or not isinstance(snap.get('servers'), dict) or not snap.get('label'):
            keys = ', '.join(sorted(snap)) if isinstance(snap, dict) else type(snap).__name__
            raise GateError('%s[%d] is not a haproxy_stats result with label and servers (a skipped or failed task?): %s'
                            % (which, position, keys))
        key = (snap['label'], snap.get('backend'))
        if key in index:
            raise GateError('%s: two snapshots of load balancer %s, backend %s; give each load balancer its own '
                            'haproxy_stats label (e.g. the inventory host name)' % (which, key[0], key[1]))
        index[key] = snap
    return index


def _check_options(max_error_rate, min_requests):
    if isinstance(max_error_rate, bool) or not isinstance(max_error_rate, (int, float)) or not 0 <= max_error_rate <= 1:
        raise GateError('max_error_rate must be a share between 0 and 1, got %r' % (max_error_rate,))
    if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 1:
        raise GateError('min_requests must be an integer of at least 1, got %r' % (min_requests,))


def _pct(rate):
    return '%.2f %%' % (100.0 * rate)


def _namer(keys):
    """(label, backend) -> the load balancer's name in messages: its label, with the backend when they differ."""
    one_backend = len(set(backend for _label, backend in keys)) <= 1

    def name(key):
        return key[0] if one_backend else '%s/%s' % key
    return name


def _deltas(name, before, after, servers, resets):
    """{server: {counter: Δ}} for one load balancer; appends to resets what shows its counters restarted."""
    restarted = None
    if before.get('pid') != after.get('pid'):
        restarted = 'HAProxy worker pid %s -> %s' % (before.get('pid'), after.get('pid'))
    elif before.get('started') != after.get('started'):
        restarted = 'HAProxy worker started again: start time %s -> %s' % (before.get('started'), after.get('started'))
    if restarted:
        resets.append('%s (%s)' % (name, restarted))
    chosen = servers if servers is not None else sorted(after['servers'])
    deltas = {}
    for server in chosen:
        for which, snap in (('before', before), ('after', after)):
            if server not in snap['servers']:
                raise GateError('server %s is not in the %s snapshot of %s (it has: %s)'
                                % (server, which, name, ', '.join(sorted(snap['servers'])) or 'none'))
        old, new = before['servers'][server], after['servers'][server]
        mode = new.get('mode') or old.get('mode')
        if mode and mode != 'http':
            raise GateError('server %s of %s is in %s mode: HAProxy counts HTTP answers only in HTTP mode' % (server, name, mode))
        delta = dict((c, to_int(new.get(c)) - to_int(old.get(c))) for c in GATE_COUNTERS)
        backwards = [c for c in GATE_COUNTERS if delta[c] < 0]
        if backwards and not restarted:   # e.g. `clear counters`: one counter named per server is enough
            counter = backwards[0]
            was, now = to_int(old.get(counter)), to_int(new.get(counter))
            resets.append('%s (%s of %s went from %d to %d)' % (name, counter, server, was, now))
        deltas[server] = delta
    return deltas


def error_rate(before, after, servers=None, max_error_rate=0.0, min_requests=DEFAULT_MIN_REQUESTS):
    """Judge one step: the snapshots of every load balancer at its start (before) and end (after).

    servers: the servers to count (the new color's); None counts every server in the snapshots.
    Returns {outcome, passed, rate, errors, requests, counts, servers, load_balancers, msg}:

    - ``pass``: rate <= max_error_rate over at least min_requests requests;
    - ``fail``: rate above max_error_rate; also below min_requests when the errors alone exceed the allowed share of
      min_requests (the step cannot pass however the missing requests would have ended);
    - ``too_few``: fewer than min_requests requests and not already failed: not judged (say so; never a silent pass);
    - ``reset``: a load balancer's counters restarted between the snapshots (a reload, a restart, ``clear counters``):
      the step's errors cannot be counted; ``rate`` is None.

    ``counts`` holds the summed Δ of hrsp_5xx, eresp, econ and responses; ``servers`` and ``load_balancers`` break
    errors and requests down. GateError for malformed or mismatched snapshots and invalid options."""
    _check_options(max_error_rate, min_requests)
    if servers is not None:
        if not isinstance(servers, (list, tuple)) or not servers or not all(isinstance(s, str) for s in servers):
            raise GateError('servers must be a non-empty list of server names, got %r' % (servers,))
        servers = list(servers)
    first, last = _index(before, 'before'), _index(after, 'after')
    if set(first) != set(last):
        only_before = sorted('%s (backend %s)' % k for k in set(first) - set(last))
        only_after = sorted('%s (backend %s)' % k for k in set(last) - set(first))
        raise GateError('before and after are not from the same load balancers: only before: %s; only after: %s'
                        % (', '.join(only_before) or 'none', ', '.join(only_after) or 'none'))
    lb_name = _namer(first)

    resets = []
    counts = dict((c, 0) for c in GATE_COUNTERS)
    per_server = {}
    per_lb = {}
    for key in sorted(first):
        deltas = _deltas(lb_name(key), first[key], last[key], servers, resets)
        lb_counts = dict((c, 0) for c in GATE_COUNTERS)
        for server, delta in deltas.items():
            entry = per_server.setdefault(server, dict((c, 0) for c in GATE_COUNTERS))
            for counter, value in delta.items():
                entry[counter] += value
                lb_counts[counter] += value
                counts[counter] += value
        per_lb[lb_name(key)] = {'errors': errors_of(lb_counts), 'requests': requests_of(lb_counts)}

    names = sorted(per_server)
    errors, requests = errors_of(counts), requests_of(counts)
    result = {
        'errors': errors, 'requests': requests,
        'counts': {'hrsp_5xx': counts['hrsp_5xx'], 'eresp': counts['eresp'], 'econ': counts['econ'],
                   'responses': responses_of(counts)},
        'servers': dict((n, {'errors': errors_of(c), 'requests': requests_of(c)}) for n, c in per_server.items()),
        'load_balancers': per_lb,
    }
    scope = 'of %s on %d load balancer%s' % (', '.join(names), len(first), '' if len(first) == 1 else 's')
    detail = '%d 5xx answers, %d response errors, %d connection errors' % (counts['hrsp_5xx'], counts['eresp'], counts['econ'])
    if resets:
        result.update(outcome='reset', rate=None,
                      msg='the error rate cannot be measured: the counters restarted during the step on %s; take the '
                          'first snapshot after the switch and after any reload' % '; '.join(resets))
    else:
        rate = float(errors) / requests if requests else None
        allowed = max_error_rate * requests + 1e-9
        if requests >= min_requests and errors > allowed:
            outcome, msg = 'fail', ('error rate %s is above the allowed %s: %d errors in %d requests %s (%s)'
                                    % (_pct(rate), _pct(max_error_rate), errors, requests, scope, detail))
        elif requests < min_requests and errors > max_error_rate * min_requests + 1e-9:
            outcome, msg = 'fail', ('%d errors in only %d requests %s (%s) exceed the allowed %s even of the minimum of '
                                    '%d requests' % (errors, requests, scope, detail, _pct(max_error_rate), min_requests))
        elif requests < min_requests:
            outcome, msg = 'too_few', ('too few requests to judge the error rate: %d < minimum %d (%s; %d errors: %s)'
                                       % (requests, min_requests, scope, errors, detail))
        else:
            outcome, msg = 'pass', ('error rate %s %s: %d errors in %d requests (%s); at most %s allowed'
                                    % (_pct(rate), scope, errors, requests, detail, _pct(max_error_rate)))
        result.update(outcome=outcome, rate=rate, msg=msg)
    result['passed'] = result['outcome'] == 'pass'
    return result
