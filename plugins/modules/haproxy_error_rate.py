#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: haproxy_error_rate
short_description: Judge a traffic step by the error rate of HAProxy's counters over several load balancers
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - Takes the M(zdt.bluegreen.haproxy_stats) snapshots of every load balancer at the start of a step (O(before))
    and at its end (O(after)) and computes the error rate of the servers counted (the new color's), summed over
    the load balancers - Δ(C(hrsp_5xx) + C(eresp) + C(econ)) / Δ(responses + C(eresp) + C(econ)), where
    responses are C(hrsp_2xx) + C(hrsp_3xx) + C(hrsp_4xx) + C(hrsp_5xx) + C(hrsp_other).
  - Fails when the rate is above O(max_error_rate); the message states the counts.
  - Below O(min_requests) requests the rate is not judged and the module says so (RV(outcome=too_few)), failing or
    warning as O(on_too_few) asks; it is never a silent pass. The step fails anyway when its errors alone exceed the
    allowed share of O(min_requests) requests.
  - Fails when the counters of a load balancer restarted between the snapshots (another HAProxy worker, or a
    counter that went backwards), since the errors of the step cannot be counted then (RV(outcome=reset)).
  - Talks to nothing; it computes from its arguments (run it once, for example with C(run_once) or on the
    controller).
options:
  before:
    description:
      - The snapshots at the start of the step, one per load balancer, as returned by M(zdt.bluegreen.haproxy_stats)
        (a registered loop's C(results) works as it is).
      - Paired with O(after) by their C(label) and C(backend).
    type: list
    elements: dict
    required: true
  after:
    description:
      - The snapshots at the end of the step, from the same load balancers.
    type: list
    elements: dict
    required: true
  servers:
    description:
      - The servers to count. Default, every server in the snapshots.
    type: list
    elements: str
  max_error_rate:
    description:
      - The highest error rate that passes, a share between 0 and 1 (0.01 is 1 %). 0 fails on any error.
    type: float
    default: 0.0
  min_requests:
    description:
      - The fewest requests (summed over the servers and load balancers) the rate is judged on.
    type: int
    default: 20
  on_too_few:
    description:
      - What to do below O(min_requests) requests when the errors do not already fail the step.
      - C(warn) returns RV(outcome=too_few) with a warning stating the counts; C(fail) fails with that message.
    type: str
    choices: [warn, fail]
    default: warn
attributes:
  check_mode:
    support: full
    description: Computes and judges in check mode too; the module never changes anything.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no difference to show.
seealso:
  - module: zdt.bluegreen.haproxy_stats
'''

EXAMPLES = r'''
# step_start and step_end: registered by a looped zdt.bluegreen.haproxy_stats task (see its examples) run on every
# load balancer right after the canary step was switched, and again at the end of the step
- name: At most 1 % of green's requests may fail, over at least 50 requests
  zdt.bluegreen.haproxy_error_rate:
    before: "{{ step_start.results }}"
    after: "{{ step_end.results }}"
    servers: [green1, green2]
    max_error_rate: 0.01
    min_requests: 50
    on_too_few: fail
  run_once: true
  register: gate

- name: One load balancer, every server in the snapshots, too few requests only warned about
  zdt.bluegreen.haproxy_error_rate:
    before: ["{{ counters_before }}"]
    after: ["{{ counters_after }}"]
'''

RETURN = r'''
outcome:
  description:
    - C(pass), C(fail) (above O(max_error_rate)), C(too_few) (below O(min_requests), not judged) or C(reset)
      (counters restarted between the snapshots, not measurable).
  returned: always, unless the arguments were invalid
  type: str
  sample: fail
passed:
  description: True only for RV(outcome=pass).
  returned: always, unless the arguments were invalid
  type: bool
  sample: false
rate:
  description: RV(errors) / RV(requests); null with no request or when the counters restarted.
  returned: always, unless the arguments were invalid
  type: float
  sample: 0.05
errors:
  description: Δ(C(hrsp_5xx) + C(eresp) + C(econ)) of the servers counted, summed over the load balancers.
  returned: always, unless the arguments were invalid
  type: int
  sample: 10
requests:
  description: Δ(responses + C(eresp) + C(econ)) of the servers counted, summed over the load balancers.
  returned: always, unless the arguments were invalid
  type: int
  sample: 200
counts:
  description: The summed Δ of C(hrsp_5xx), C(eresp), C(econ) and C(responses).
  returned: always, unless the arguments were invalid
  type: dict
  sample: {hrsp_5xx: 10, eresp: 0, econ: 0, responses: 200}
servers:
  description: RV(errors) and RV(requests) per server counted, summed over the load balancers.
  returned: always, unless the arguments were invalid
  type: dict
  sample: {green1: {errors: 10, requests: 200}}
load_balancers:
  description: RV(errors) and RV(requests) per load balancer (by snapshot label).
  returned: always, unless the arguments were invalid
  type: dict
  sample: {lb1: {errors: 6, requests: 104}, lb2: {errors: 4, requests: 96}}
msg:
  description: The verdict with the counts.
  returned: always
  type: str
  sample: >-
    error rate 5.00 % is above the allowed 1.00 %: 10 errors in 200 requests of green1, green2 on 2 load balancers
    (10 5xx answers, 0 response errors, 0 connection errors)
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.module_args import argument_spec, bounds_problem
from ansible_collections.zdt.bluegreen.plugins.module_utils.traffic_gate import error_rate


def run(module):
    p = module.params
    problem = bounds_problem(p)
    if problem:
        module.fail_json(msg=problem)
    result = error_rate(p['before'], p['after'], servers=p['servers'], max_error_rate=p['max_error_rate'],
                        min_requests=p['min_requests'])
    failed = result['outcome'] in ('fail', 'reset') or (result['outcome'] == 'too_few' and p['on_too_few'] == 'fail')
    if failed:
        module.fail_json(changed=False, **result)
    if result['outcome'] == 'too_few':
        module.warn(result['msg'])
    module.exit_json(changed=False, **result)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            before=dict(type='list', elements='dict', required=True),
            after=dict(type='list', elements='dict', required=True),
            servers=dict(type='list', elements='str'),
            max_error_rate=dict(type='float', default=0.0),
            min_requests=dict(type='int', default=20),
            on_too_few=dict(type='str', choices=['warn', 'fail'], default='warn'),
        ),
        supports_check_mode=True,
    )
    try:
        run(module)
    except ZdtError as exc:
        module.fail_json(msg=to_native(exc), exception=traceback.format_exc())


if __name__ == '__main__':
    main()
