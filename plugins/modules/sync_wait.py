#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: sync_wait
short_description: Wait for a backfill started in the background, showing its progress
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - "Waits for the async job O(jid) of M(zdt.bluegreen.mysql_trigger_sync) (started with C(async) and C(poll: 0)) in one
    flat loop, however long the backfill takes: the job's results file (the one C(async_status) reads) every O(poll) seconds, and every O(progress_interval)
    seconds the progress from M(zdt.bluegreen.mysql_sync_info) printed as one line (rows, share, rate, ETA, a pause and
    its reason), which ansible-runner and AWX record as a job event."
  - Returns the job's result (triggers, backfill, verify); fails with the job's message when it failed, when the job
    was killed (its checkpoint says running but no session holds the migration's lock), or after O(timeout) (the job
    keeps running then).
  - With O(lock_token), refreshes the heartbeat of the run lock (M(zdt.bluegreen.run_lock)) at every progress line.
  - This is an action plugin - it runs on the controller and executes the modules it polls with on the task's host.
options:
  jid:
    description: The async job id (C(ansible_job_id) of the registered result).
    type: str
    required: true
  migration:
    description: The migration, as given to M(zdt.bluegreen.mysql_trigger_sync).
    type: raw
    required: true
  login:
    description: The MySQL connection options of M(zdt.bluegreen.mysql_sync_info) (C(database), C(login_user), ...).
    type: dict
    default: {}
  poll:
    description: Seconds between two looks at the job.
    type: float
    default: 1.0
  progress_interval:
    description: Seconds between two progress lines.
    type: float
    default: 10.0
  timeout:
    description: Seconds to wait at the most.
    type: float
    default: 21600.0
  lock_name:
    description: The run lock's name (with O(lock_token)).
    type: str
  lock_token:
    description: The run lock's token; its heartbeat is refreshed at every progress line.
    type: str
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: none
    details: A backfill does not run in check mode, so there is nothing to wait for.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
'''

EXAMPLES = r'''
- name: Create the triggers, backfill and verify in the background
  zdt.bluegreen.mysql_trigger_sync:
    database: app
    migration: "{{ migration }}"
  async: 21600
  poll: 0
  register: sync_job

- name: Wait for it, a progress line every 10 s
  zdt.bluegreen.sync_wait:
    jid: "{{ sync_job.ansible_job_id }}"
    migration: "{{ migration }}"
    login: {database: app, login_unix_socket: /run/mysqld/mysqld.sock}
    progress_interval: 10
'''

RETURN = r'''
polls:
  description: How many times the job was looked at.
  returned: always
  type: int
waited:
  description: Seconds waited.
  returned: always
  type: float
backfill:
  description: The backfill figures of M(zdt.bluegreen.mysql_trigger_sync).
  returned: success
  type: dict
verify:
  description: The verify figures of M(zdt.bluegreen.mysql_trigger_sync).
  returned: success
  type: dict
triggers:
  description: The sync triggers.
  returned: success
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        jid=dict(type='str', required=True), migration=dict(type='raw', required=True), login=dict(type='dict', default={}),
        poll=dict(type='float', default=1.0), progress_interval=dict(type='float', default=10.0),
        timeout=dict(type='float', default=21600.0), lock_name=dict(type='str'), lock_token=dict(type='str', no_log=False)))
    module.fail_json(msg='zdt.bluegreen.sync_wait is an action plugin: run it as a task, not as a module on its own')


if __name__ == '__main__':
    main()
