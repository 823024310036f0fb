#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: haproxy_stats
short_description: Read the per-server request and error counters of a HAProxy backend
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - Reads C(show stat) and C(show info) through the runtime API and returns one snapshot of the counters of the
    servers given by O(servers) or O(colors) and O(color), or of every server of the backend when neither is given.
    Changes nothing.
  - Two snapshots of every load balancer, one at the start of a traffic step and one at its end, are what
    M(zdt.bluegreen.haproxy_error_rate) judges.
  - The counters are HAProxy's since its worker started; a reload or restart sets them back to 0. Take the first
    snapshot of a step after the switch and after any reload.
extends_documentation_fragment:
  - zdt.bluegreen.haproxy
  - zdt.bluegreen.haproxy_servers
options:
  label:
    description:
      - Names this load balancer in the snapshot, so that M(zdt.bluegreen.haproxy_error_rate) can pair the
        snapshots of several load balancers and name them in its message.
      - Defaults to the host name of the host the module runs on and the socket address. Load balancers that share
        both (network namespaces on one host) need a label each, for example the inventory host name.
    type: str
  timeout:
    description:
      - Seconds for every socket operation.
    type: float
    default: 10
attributes:
  check_mode:
    support: full
    description: Reads the counters in check mode too; the module never changes anything.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no difference to show.
notes:
  - Reads only, so a stats socket at C(level user) is enough (the admin socket of the other modules works too).
  - In TCP mode HAProxy counts no HTTP answers; M(zdt.bluegreen.haproxy_error_rate) refuses such snapshots.
seealso:
  - module: zdt.bluegreen.haproxy_error_rate
  - module: zdt.bluegreen.haproxy_swap
'''

EXAMPLES = r'''
- name: Counters of the green servers on every load balancer at the start of the step
  zdt.bluegreen.haproxy_stats:
    socket: /run/haproxy/admin.sock
    backend: app
    colors: {blue: [blue1, blue2], green: [green1, green2]}
    color: green
    label: "{{ item }}"
  delegate_to: "{{ item }}"
  loop: "{{ groups['load_balancers'] }}"
  register: step_start

- name: All servers of a backend
  zdt.bluegreen.haproxy_stats:
    socket: ipv4@127.0.0.1:9999
    backend: app
  register: counters

- name: Show the 5xx answers of green1
  ansible.builtin.debug:
    msg: "{{ counters.servers.green1.hrsp_5xx }}"
'''

RETURN = r'''
label:
  description: The load balancer's name in this snapshot (O(label), or host name and socket address).
  returned: success
  type: str
  sample: lb1:/run/haproxy/admin.sock
backend:
  description: The backend read.
  returned: success
  type: str
  sample: app
pid:
  description: Process id of the HAProxy worker that answered; a different one later means the counters restarted.
  returned: success
  type: int
  sample: 4242
started:
  description: Start time of that worker (seconds since the epoch, C(Start_time_sec) of C(show info)).
  returned: success
  type: int
  sample: 1796576654
servers:
  description:
    - Per server, HAProxy's counters since its worker started.
    - C(hrsp_1xx) .. C(hrsp_5xx), C(hrsp_other) answers the server sent by status class; C(eresp) response errors
      (the server closed or timed out mid-response, HAProxy answered 502 or 504 itself); C(econ) requests whose last
      connection attempt failed (HAProxy answered 503); C(wretr), C(wredis) connection retries and redispatches
      (the client saw no error); C(req_tot) HTTP requests; C(stot) sessions; C(mode) http or tcp.
    - C(responses) is C(hrsp_2xx + hrsp_3xx + hrsp_4xx + hrsp_5xx + hrsp_other); C(errors) is
      C(hrsp_5xx + eresp + econ).
  returned: success
  type: dict
  sample:
    green1: {hrsp_1xx: 0, hrsp_2xx: 190, hrsp_3xx: 0, hrsp_4xx: 0, hrsp_5xx: 10, hrsp_other: 0, eresp: 0, econ: 0,
             wretr: 0, wredis: 0, req_tot: 200, stot: 12, mode: http, responses: 200, errors: 10}
total:
  description: The same counters summed over the servers read (without C(mode)).
  returned: success
  type: dict
  sample: {hrsp_1xx: 0, hrsp_2xx: 190, hrsp_3xx: 0, hrsp_4xx: 0, hrsp_5xx: 10, hrsp_other: 0, eresp: 0, econ: 0,
           wretr: 0, wredis: 0, req_tot: 200, stot: 12, responses: 200, errors: 10}
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.module_args import (
    HAPROXY_SERVERS_RULES, HAPROXY_SERVERS_SPEC, HAPROXY_SOCKET_SPEC, argument_spec, bounds_problem,
)
from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_runtime import RuntimeClient
from ansible_collections.zdt.bluegreen.plugins.module_utils.traffic_gate import read_snapshot
from ansible_collections.zdt.bluegreen.plugins.module_utils.traffic_plan import resolve_drain_servers


def run(module):
    p = module.params
    problem = bounds_problem(p)
    if problem:
        module.fail_json(msg=problem)
    names = None
    if p['servers'] or p['colors']:
        names = resolve_drain_servers(p['servers'], p['colors'], p['color'])
    with RuntimeClient(p['socket'], timeout=p['timeout']) as client:
        snapshot = read_snapshot(client, p['backend'], names, label=p['label'])
    module.exit_json(changed=False, **snapshot)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            HAPROXY_SOCKET_SPEC,
            HAPROXY_SERVERS_SPEC,
            label=dict(type='str'),
            timeout=dict(type='float', default=10),
        ),
        supports_check_mode=True,
        **HAPROXY_SERVERS_RULES
    )
    try:
        run(module)
    except ZdtError as exc:
        module.fail_json(msg=to_native(exc), exception=traceback.format_exc())


if __name__ == '__main__':
    main()
