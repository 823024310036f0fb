#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: run_lock
short_description: One run at a time - a lock with a heartbeat in the database or in a file
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - O(state=acquired) takes the lock O(name) for the run identified by O(token); O(state=heartbeat) tells that the run
    is alive; O(state=released) gives the lock back. A lock taken again with the same token only refreshes the heartbeat.
  - The lock is a row of table C(zdt_run_lock) in O(database) (created when missing; the database server's clock), or,
    with O(path), a JSON file on the host (its clock) - for a stack without a database, one on every load balancer.
  - A second run fails up front naming the holder (O(holder), for example an AWX job id or user@host:pid) and when it
    started. A lock whose heartbeat is older than O(stale_after) seconds belongs to a run that died and is taken over;
    the result's RV(took_over) says whose it was.
  - O(state=heartbeat) fails when the lock is no longer this run's (another run took it over).
extends_documentation_fragment:
  - zdt.bluegreen.mysql
options:
  database:
    description:
      - The database holding C(zdt_run_lock). Required unless O(path) is given.
    type: str
    required: false
  state:
    description: What to do with the lock.
    type: str
    choices: [acquired, heartbeat, released]
    default: acquired
  name:
    description: The lock's name; one run at a time per name.
    type: str
    default: zdt.bluegreen
  token:
    description: This run's token (random, the same for every call of one run).
    type: str
    required: true
  holder:
    description: Who holds it, shown to a second run.
    type: str
    default: unknown
  playbook:
    description: What the holder runs, shown to a second run.
    type: str
    default: ""
  stale_after:
    description: Seconds without a heartbeat after which the lock is taken over.
    type: int
    default: 600
  path:
    description: Keep the lock in this file on the host instead of the database.
    type: path
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reports who holds the lock (RV(holder)) and fails as a real run would when a live run holds it; takes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
'''

EXAMPLES = r'''
- name: One run at a time
  zdt.bluegreen.run_lock:
    login_unix_socket: /run/mysqld/mysqld.sock
    database: app
    token: "{{ run_token }}"
    holder: "AWX job {{ awx_job_id }}"
    playbook: upgrade.yml

- name: Give it back
  zdt.bluegreen.run_lock:
    path: /var/lib/zdt-haproxy/run.lock
    token: "{{ run_token }}"
    state: released
'''

RETURN = r'''
took_over:
  description: The dead run whose lock was taken over ({holder, started_at, heartbeat_age, stale_after}), or null.
  returned: always
  type: dict
holder:
  description: Who holds the lock when the task started (check mode), or null.
  returned: check mode
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.module_args import MYSQL_CONNECTION_SPEC, argument_spec, bounds_problem
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import HAS_PYMYSQL, PYMYSQL_IMPORT_ERROR, connect
from ansible_collections.zdt.bluegreen.plugins.module_utils.run_lock import DatabaseLock, FileLock, LockHeld


def main():
    spec = argument_spec(
        MYSQL_CONNECTION_SPEC,
        database=dict(type='str', required=False),
        state=dict(type='str', choices=['acquired', 'heartbeat', 'released'], default='acquired'),
        name=dict(type='str', default='zdt.bluegreen'),
        token=dict(type='str', required=True, no_log=False),
        holder=dict(type='str', default='unknown'),
        playbook=dict(type='str', default=''),
        stale_after=dict(type='int', default=600),
        path=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=spec, required_one_of=[('database', 'path')], supports_check_mode=True)
    p = module.params
    problem = bounds_problem(p)
    if problem:
        module.fail_json(msg=problem)
    conn = None
    try:
        if p['path']:
            lock = FileLock(p['path'], p['name'])
        else:
            if not HAS_PYMYSQL:
                module.fail_json(msg=missing_required_lib('PyMySQL'), exception=PYMYSQL_IMPORT_ERROR)
            conn = connect(p)
            lock = DatabaseLock(conn, p['name'])
        if module.check_mode:
            holder = lock.peek(p['stale_after'])
            if p['state'] == 'acquired' and holder and not holder['stale']:
                raise LockHeld(p['name'], holder)
            module.exit_json(changed=p['state'] != 'heartbeat', took_over=None, holder=holder)
        if p['state'] == 'acquired':
            result = lock.acquire(p['token'], p['holder'], p['playbook'], p['stale_after'])
        elif p['state'] == 'heartbeat':
            result = lock.heartbeat(p['token'])
        else:
            result = lock.release(p['token'])
    except ZdtError as exc:
        module.fail_json(msg=to_native(exc))
    finally:
        if conn is not None:
            conn.close()
    if result.get('took_over'):
        module.warn('took over lock %s from a run that stopped sending heartbeats: %s, started %s, last heartbeat %ss ago'
                    % (p['name'], result['took_over']['holder'], result['took_over']['started_at'], result['took_over']['heartbeat_age']))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
