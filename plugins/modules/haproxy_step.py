#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: haproxy_step
short_description: Judge a traffic step over several load balancers and plan how to put it back
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - Takes the registered results of a traffic step's M(zdt.bluegreen.haproxy_swap) on every load balancer
    (O(switched)) and of a check-mode M(zdt.bluegreen.haproxy_swap) run on each right after it (O(read_back), whose
    C(previous) is what HAProxy holds), and says whether the load balancers are in step - every switch succeeded and
    every load balancer holds the color O(active) at the share O(weight) with the same server states (admin state,
    and weight of the servers that take traffic).
  - Any difference is a problem naming the load balancers and what each has (RV(problems)); RV(revert) says where
    each load balancer goes back to - the previous step's state O(previous), or for the first step the state each
    had before it.
  - Without O(reverted) it only reports (never fails on a difference), so that the play can put the load balancers
    back first. With O(reverted), the results of putting them back, it fails when the step was not in step, with a
    message naming the problems, where each load balancer was put back to, and which could not be put back.
  - Talks to nothing; it computes from its arguments (run it once, for example with C(run_once)).
options:
  load_balancers:
    description:
      - The load balancers of the step (inventory host names), the keys of the other dicts.
    type: list
    elements: str
    required: true
  active:
    description:
      - The color the step gives its share to.
    type: str
    required: true
  weight:
    description:
      - The share of O(active) the step asks, in percent.
    type: int
    required: true
  switched:
    description:
      - Per load balancer, the registered result of the step's M(zdt.bluegreen.haproxy_swap) (run with
        C(ignore_errors), so that a failure on one load balancer leaves the others to be put back).
    type: dict
    required: true
  read_back:
    description:
      - Per load balancer, the registered result of a check-mode M(zdt.bluegreen.haproxy_swap) run after the step
        (C(force=true), C(failed_when=false)); its C(previous) is the state HAProxy holds, its C(msg) why it could
        not be read.
    type: dict
    required: true
  previous:
    description:
      - The previous step's state, C({active, weight}), that every load balancer goes back to when this step fails.
      - Omitted for the first step; each load balancer then goes back to what it had before the step.
    type: dict
  reverted:
    description:
      - Per load balancer, the registered result of putting it back to RV(revert). When given, the module fails
        when the step was not in step, naming what was put back and what could not be.
    type: dict
attributes:
  check_mode:
    support: full
    description: Judges in check mode too; the module never changes anything.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no difference to show.
seealso:
  - module: zdt.bluegreen.haproxy_swap
'''

EXAMPLES = r'''
# every load balancer: the step (ignore_errors), then the read-back; lbs is the list of load balancers
- name: Judge the step over every load balancer
  zdt.bluegreen.haproxy_step:
    load_balancers: "{{ lbs }}"
    active: green
    weight: 50
    previous: {active: green, weight: 10}
    switched: "{{ dict(lbs | zip(lbs | map('extract', hostvars, 'step_switch'))) }}"
    read_back: "{{ dict(lbs | zip(lbs | map('extract', hostvars, 'step_read_back'))) }}"
  run_once: true
  register: step

- name: Put every load balancer back to the previous step
  zdt.bluegreen.haproxy_swap:
    socket: /run/haproxy/admin.sock
    backend: app
    colors: {blue: [blue1], green: [green1]}
    active: "{{ step.revert[inventory_hostname].active }}"
    weight: "{{ step.revert[inventory_hostname].weight }}"
    force: true
  register: step_put_back
  ignore_errors: true
  when: not step.in_step and step.revert[inventory_hostname] is not none

- name: Fail, naming what each load balancer has and what could not be put back
  zdt.bluegreen.haproxy_step:
    load_balancers: "{{ lbs }}"
    active: green
    weight: 50
    previous: {active: green, weight: 10}
    switched: "{{ dict(lbs | zip(lbs | map('extract', hostvars, 'step_switch'))) }}"
    read_back: "{{ dict(lbs | zip(lbs | map('extract', hostvars, 'step_read_back'))) }}"
    reverted: "{{ dict(lbs | zip(lbs | map('extract', hostvars, 'step_put_back'))) }}"
  run_once: true
  when: not step.in_step
'''

RETURN = r'''
in_step:
  description: True when every switch succeeded and every load balancer holds the step with the same server states.
  returned: always, unless the arguments were invalid
  type: bool
  sample: false
problems:
  description: What keeps the load balancers out of step, each naming the load balancers and what they have.
  returned: always, unless the arguments were invalid
  type: list
  elements: str
  sample:
    - "the switch failed on lb2: cannot connect to HAProxy at /run/haproxy/admin.sock: [Errno 2] No such file or directory"
    - "lb2 could not be read back: cannot connect to HAProxy at /run/haproxy/admin.sock"
states:
  description: Per load balancer, what it holds after the step (C({active, weight, servers})) or C({error}).
  returned: always, unless the arguments were invalid
  type: dict
  sample: {lb1: {active: green, weight: 50, servers: {blue1: {admin_state: ready, weight: 50}}}, lb2: {error: gone}}
revert:
  description: Per load balancer, the C({active, weight}) it goes back to if the step is not in step (null when
    nothing is known to go back to).
  returned: always, unless the arguments were invalid
  type: dict
  sample: {lb1: {active: green, weight: 10}, lb2: {active: green, weight: 10}}
msg:
  description: The verdict; with O(reverted), the failure naming what was put back and what could not be.
  returned: always
  type: str
  sample: >-
    the step to green 50 % failed: the switch failed on lb2: cannot connect to HAProxy. Put back: lb1 to green 10 %.
    NOT put back: lb2 (cannot connect to HAProxy); the load balancers may be split: a rerun puts them in step.
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.traffic_plan import judge_step, step_failure_message


def run(module):
    p = module.params
    previous = p['previous']
    if previous is not None and (previous.get('active') is None or previous.get('weight') is None):
        module.fail_json(msg='previous must be {active, weight}, got %r' % (previous,))
    verdict = judge_step(p['load_balancers'], p['active'], p['weight'], p['switched'], p['read_back'], previous)
    if p['reverted'] is not None and not verdict['in_step']:
        module.fail_json(changed=False, msg=step_failure_message(p['active'], p['weight'], verdict['problems'],
                                                                 verdict['revert'], p['reverted']), **verdict)
    msg = ('every load balancer holds %s %s %%' % (p['active'], p['weight']) if verdict['in_step']
           else 'the step to %s %s %% is not in step: %s' % (p['active'], p['weight'], '; '.join(verdict['problems'])))
    module.exit_json(changed=False, msg=msg, **verdict)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            load_balancers=dict(type='list', elements='str', required=True),
            active=dict(type='str', required=True),
            weight=dict(type='int', required=True),
            switched=dict(type='dict', required=True),
            read_back=dict(type='dict', required=True),
            previous=dict(type='dict'),
            reverted=dict(type='dict'),
        ),
        supports_check_mode=True,
    )
    try:
        run(module)
    except ZdtError as exc:
        module.fail_json(msg=to_native(exc), exception=traceback.format_exc())


if __name__ == '__main__':
    main()
