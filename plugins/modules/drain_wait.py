#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: drain_wait
short_description: Drain HAProxy servers and wait until their sessions are gone
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - Puts the servers to C(drain) if they are C(ready) (a server that is DOWN can be drained too; a server in
    C(maint) stays there), then waits until every one of them has no current session (C(scur)) and nothing queued
    (C(qcur)), polling every O(interval) seconds up to O(timeout). The number of polls is exact,
    ceil(O(timeout) / O(interval)) + 1, the last one at the deadline.
  - Then sets the servers to C(maint) unless O(maint=false).
  - At the deadline, fails naming each busy server's counts (the servers stay in C(drain)), or with
    O(on_timeout=shutdown) shuts their sessions down (in HTTP mode every in-flight request gets a 502), warns, and
    goes on to C(maint).
  - In HTTP mode C(scur) counts requests in flight, not idle keep-alive connections.
  - A server declared C(disabled) in the configuration that was made C(ready) is C(ready) like any other (HAProxy
    keeps the configuration bit 0x04 of C(srv_admin_state); alone it never means C(maint)), so it is drained too.
  - Any failure after it changed an admin state (a timeout, a socket error or timeout while waiting, a refused
    C(maint)) reports C(changed=true).
extends_documentation_fragment:
  - zdt.bluegreen.haproxy
  - zdt.bluegreen.haproxy_servers
options:
  timeout:
    description:
      - Seconds to wait for the sessions to end.
    type: float
    default: 300
  interval:
    description:
      - Seconds between two polls of the session counts.
    type: float
    default: 1
  on_timeout:
    description:
      - What to do when sessions remain at the deadline.
    type: str
    choices: [fail, shutdown]
    default: fail
  maint:
    description:
      - Set the drained servers to C(maint), which also closes idle pooled server connections at once.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reports the admin states it would set and the current session counts, without waiting.
  diff_mode:
    support: full
    description: Before and after admin state per server.
notes:
  - Each socket operation times out after 10 seconds.
seealso:
  - module: zdt.bluegreen.haproxy_swap
'''

EXAMPLES = r'''
- name: Drain blue and put it to maint
  zdt.bluegreen.drain_wait:
    socket: /run/haproxy/admin.sock
    backend: app
    colors: {blue: [blue1], green: [green1]}
    color: blue
    timeout: 120

- name: Drain one server, cut what is left after 30 s
  zdt.bluegreen.drain_wait:
    socket: ipv4@127.0.0.1:9999
    backend: app
    servers: [blue1]
    timeout: 30
    on_timeout: shutdown
'''

RETURN = r'''
waited:
  description: Seconds waited for the sessions to end (0 in check mode).
  returned: always
  type: float
  sample: 4.2
sessions:
  description: Current sessions per server when the task ended.
  returned: always
  type: dict
  sample: {blue1: 0}
shutdown:
  description: True when sessions were shut down at the deadline (a warning says so).
  returned: always
  type: bool
  sample: false
cut:
  description:
    - Sessions shut down at the deadline per server (current plus queued); in HTTP mode each is a request in flight
      that got a 502. Empty when nothing was cut.
  returned: always
  type: dict
  sample: {blue1: 2}
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.module_args import (
    HAPROXY_SERVERS_RULES, HAPROXY_SERVERS_SPEC, HAPROXY_SOCKET_SPEC, argument_spec, bounds_problem,
)
from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_runtime import RuntimeClient
from ansible_collections.zdt.bluegreen.plugins.module_utils.traffic_apply import execute_drain
from ansible_collections.zdt.bluegreen.plugins.module_utils.traffic_plan import ChangedError, DrainTimeout, resolve_drain_servers

SOCKET_TIMEOUT = 10.0


def run(module):
    p = module.params
    problem = bounds_problem(p)
    if problem:
        module.fail_json(msg=problem)
    names = resolve_drain_servers(p['servers'], p['colors'], p['color'])
    with RuntimeClient(p['socket'], timeout=SOCKET_TIMEOUT) as client:
        try:
            result = execute_drain(client, p['backend'], names, timeout=p['timeout'], interval=p['interval'],
                                   on_timeout=p['on_timeout'], maint=p['maint'], check_mode=module.check_mode)
        except DrainTimeout as exc:
            module.fail_json(msg='drain_wait: %s (servers left in drain)' % to_native(exc), changed=getattr(exc, 'changed', False),
                             waited=round(exc.waited, 3), sessions=dict((n, c[0]) for n, c in exc.counts.items()), shutdown=False)
    for warning in result['warnings']:
        module.warn(warning)
    out = {'changed': result['changed'], 'waited': result['waited'], 'sessions': result['sessions'], 'shutdown': result['shutdown'],
           'cut': result['cut']}
    if module._diff:
        out['diff'] = {'before': {'servers': result['before']}, 'after': {'servers': result['after']}}
    module.exit_json(**out)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            HAPROXY_SOCKET_SPEC,
            HAPROXY_SERVERS_SPEC,
            timeout=dict(type='float', default=300),
            interval=dict(type='float', default=1),
            on_timeout=dict(type='str', choices=['fail', 'shutdown'], default='fail'),
            maint=dict(type='bool', default=True),
        ),
        required_one_of=[('servers', 'colors')],
        supports_check_mode=True,
        **HAPROXY_SERVERS_RULES
    )
    try:
        run(module)
    except ChangedError as exc:
        for warning in exc.warnings:
            module.warn(warning)
        module.fail_json(msg='drain_wait: %s' % to_native(exc), changed=True, exception=traceback.format_exc())
    except ZdtError as exc:
        module.fail_json(msg=to_native(exc), exception=traceback.format_exc())


if __name__ == '__main__':
    main()
