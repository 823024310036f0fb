#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: haproxy_swap
short_description: Switch a HAProxy backend's traffic between blue/green colors through the runtime API
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - Puts the servers of the O(active) color to C(ready) at a weight that gives the color O(weight) percent of the
    backend's traffic, and the servers of the other color either to C(drain) (O(weight=100)) or to C(ready) with the
    remaining share (a canary, O(weight) below 100). Per-server HAProxy weights are derived from both colors' server
    counts, so a color's share holds whatever its number of servers.
  - Servers that will take traffic are changed first, servers losing traffic last. Servers in no color are not touched.
  - The admin state is read from C(show servers state) (its C(srv_admin_state) bits), never from the status text,
    which stays C(DOWN) for a drained server failing its checks. C(maint) is what HAProxy itself counts as
    maintenance - forced, inherited from a tracked server, or a resolution failure (bits 0x23).
  - A server declared C(disabled) in the configuration (the idle color parked there) is an ordinary idle server in
    C(maint), woken, checked and activated like any other. HAProxy keeps the configuration bit 0x04 after the
    server left maintenance, so that bit alone never means C(maint).
  - Refuses (changing nothing) to activate a color with a server that is down or failing its health checks unless
    O(force=true). A server of the color in C(maint) is first put to C(drain) so its checks run, and is judged once
    they settle (bounded by O(timeout)); if the switch is refused it goes back to C(maint).
  - Refuses, even with O(force=true), a switch that would take away the last server of the backend that is both
    C(ready) and passing its checks.
  - C(changed) comes from admin states and weights only, never from session counts. A failure after something was
    changed (a step of the switch, a server woken from C(maint), the state file, the reload or its read-back) reports
    C(changed=true) with RV(previous) and RV(current).
  - Persists the result so a later reload or restart keeps it. With O(state_file), C(show servers state) is written
    atomically to that file after the switch (the format C(load-server-state-from-file) reads). With
    O(master_socket), a switch that changed something is followed by a hitless reload through the master CLI;
    HAProxy 2.6 sends no status for C(reload), so success is read back from C(show proc) (a new current worker),
    and the new worker's server states are compared with the switched ones.
extends_documentation_fragment:
  - zdt.bluegreen.haproxy
options:
  colors:
    description:
      - The colors of the backend, each with the list of its server names.
      - A canary (O(weight) below 100) needs exactly two colors.
    type: dict
    required: true
  active:
    description:
      - The color that takes traffic.
    type: str
    required: true
  weight:
    description:
      - Percent of the backend's traffic for O(active), 1 to 100.
      - 100 drains the other color; below 100 is a canary and the rest stays on the other color.
    type: int
    default: 100
  force:
    description:
      - Activate O(active) even if some of its servers are down or fail their health checks.
      - Never overrides the refusal to take away the last ready and passing server.
    type: bool
    default: false
  state_file:
    description:
      - Server-state file to persist to (the C(server-state-file) of the HAProxy configuration).
      - Required with O(master_socket), otherwise a reload would lose the switch.
    type: path
  master_socket:
    description:
      - HAProxy master CLI socket (C(-S)); when set and the switch changed something, HAProxy is reloaded
        hitlessly through it after the state file was written.
    type: str
  timeout:
    description:
      - Seconds for every socket operation, and the bound for waiting on health checks of servers leaving
        maint and on a reload's read-back.
    type: float
    default: 10
attributes:
  check_mode:
    support: full
    description: Reports the planned states and weights; servers in maint are not woken, so their health is assumed.
  diff_mode:
    support: full
    description: Before and after admin state and weight per server.
notes:
  - Needs the stats socket at C(level admin). HAProxy 2.6 or later.
seealso:
  - module: zdt.bluegreen.drain_wait
'''

EXAMPLES = r'''
- name: Canary, 10 % to green
  zdt.bluegreen.haproxy_swap:
    socket: /run/haproxy/admin.sock
    backend: app
    colors: {blue: [blue1], green: [green1]}
    active: green
    weight: 10

- name: All traffic to green, blue drains; persist and reload
  zdt.bluegreen.haproxy_swap:
    socket: /run/haproxy/admin.sock
    backend: app
    colors: {blue: [blue1], green: [green1]}
    active: green
    state_file: /var/lib/haproxy/server-state
    master_socket: /run/haproxy/master.sock
  register: swap

- name: Roll back the traffic split (the previous color takes its previous share again)
  zdt.bluegreen.haproxy_swap:
    socket: /run/haproxy/admin.sock
    backend: app
    colors: {blue: [blue1], green: [green1]}
    active: "{{ swap.previous.active }}"
    weight: "{{ swap.previous.weight }}"
  when: swap.previous.active is not none
'''

RETURN = r'''
previous:
  description:
    - The backend's colors before the task (also returned when the task fails after it changed something).
    - Passing its RV(previous.active) and RV(previous.weight) back as O(active) and O(weight) restores the traffic
      split - which color takes which share (rounded to a whole percent) - not the exact previous state. Admin
      states follow the switch rules, not the previous ones. The servers of O(active) become C(ready); those of the
      other color C(ready) with the rest of the traffic (a canary) or C(drain) (O(weight=100)), so a server that was
      in C(maint) comes back as C(drain). Per-server weights are derived again (equal to the previous ones when this
      module set them); a drained color keeps the weights it has at that time.
    - RV(previous.active) is null when no server of the colors was C(ready); there is no split to restore then.
  returned: always
  type: dict
  contains:
    active:
      description: The color with the larger share of the traffic (null when no server is ready).
      type: str
    weight:
      description: The share of O(active) in percent.
      type: int
    servers:
      description: Per server of the colors, C(admin_state) (ready, drain or maint) and C(weight).
      type: dict
  sample: {active: blue, weight: 100, servers: {blue1: {admin_state: ready, weight: 100}, green1: {admin_state: drain, weight: 100}}}
current:
  description:
    - The same after the task (in check mode, what it would be).
    - When the task fails after it changed something (C(changed=true)), the state read back after the failure, or
      the switched state when it could not be read.
  returned: always
  type: dict
  sample: {active: green, weight: 90, servers: {blue1: {admin_state: ready, weight: 10}, green1: {admin_state: ready, weight: 90}}}
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.module_args import HAPROXY_SOCKET_SPEC, argument_spec, bounds_problem
from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_master import MasterClient
from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_runtime import RuntimeClient, write_state_file
from ansible_collections.zdt.bluegreen.plugins.module_utils.traffic_apply import swap_and_persist
from ansible_collections.zdt.bluegreen.plugins.module_utils.traffic_plan import ChangedError


def run(module):
    p = module.params
    problem = bounds_problem(p)
    if problem:
        module.fail_json(msg=problem)
    colors = p['colors']
    for color, names in colors.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            module.fail_json(msg='colors.%s must be a list of server names' % color)
    persist = reload = None
    if p['state_file']:
        def persist(client):
            write_state_file(client, p['state_file'])
    if p['master_socket']:
        def reload():
            MasterClient(p['master_socket'], timeout=p['timeout']).reload(timeout=max(p['timeout'], 10))
    result = swap_and_persist(lambda: RuntimeClient(p['socket'], timeout=p['timeout']), p['backend'], colors, p['active'],
                              weight=p['weight'], force=p['force'], check_mode=module.check_mode, timeout=p['timeout'],
                              persist=persist, reload=reload)
    for warning in result['warnings']:
        module.warn(warning)
    out = {'changed': result['changed'], 'previous': result['previous'], 'current': result['current']}
    if module._diff:
        out['diff'] = {'before': result['previous'], 'after': result['current']}
    module.exit_json(**out)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            HAPROXY_SOCKET_SPEC,
            colors=dict(type='dict', required=True),
            active=dict(type='str', required=True),
            weight=dict(type='int', default=100),
            force=dict(type='bool', default=False),
            state_file=dict(type='path'),
            master_socket=dict(type='str'),
            timeout=dict(type='float', default=10),
        ),
        required_by={'master_socket': 'state_file'},
        supports_check_mode=True,
    )
    try:
        run(module)
    except ChangedError as exc:
        for warning in exc.warnings:
            module.warn(warning)
        module.fail_json(msg=to_native(exc), changed=True, previous=exc.previous, current=exc.current,
                         exception=traceback.format_exc())
    except ZdtError as exc:
        module.fail_json(msg=to_native(exc), exception=traceback.format_exc())


if __name__ == '__main__':
    main()
