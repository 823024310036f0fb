#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: mysql_sync_info
short_description: Report the sync triggers and the backfill progress of a migration
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - Read-only. For every C(sync) entry of the migration, reports whether its triggers exist and the backfill progress
    from the checkpoint that M(zdt.bluegreen.mysql_trigger_sync) updates after every chunk.
  - Poll it while the backfill runs under C(async).
extends_documentation_fragment:
  - zdt.bluegreen.mysql
  - zdt.bluegreen.migration
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The module never changes anything.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
'''

EXAMPLES = r'''
- name: Wait for the backfill
  zdt.bluegreen.mysql_sync_info:
    login_host: 127.0.0.1
    login_user: deploy
    login_password: "{{ db_password }}"
    database: shop
    migration: migrations/002_addresses.yml
  register: sync
  until: sync.sync | map(attribute='backfill.state') | difference(['done']) | length == 0
  retries: 600
  delay: 2
'''

RETURN = r'''
sync:
  description: One item per sync entry.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: Position of the entry in the migration's C(sync) list.
      type: int
    kind:
      description: C(cross) or C(same).
      type: str
    triggers:
      description: Names of the entry's triggers.
      type: list
      elements: str
    triggers_exist:
      description: Whether all of the entry's triggers exist.
      type: bool
    triggers_present:
      description: Those of the entry's triggers that exist.
      type: list
      elements: str
    backfill:
      description:
        - Progress; C(state) is C(not_started), C(running), C(interrupted) (a checkpoint of a run that is no longer alive)
          or C(done).
        - C(paused) is true while the running copy waits (a replica lags or cannot be reached, or the primary is busy), and
          C(pause_reason) says why; after a run stopped while paused, C(pause_reason) keeps the last reason.
      type: dict
      sample: {state: running, rows_done: 420000, rows_total: 1000000, rows_per_second: 210000.0, eta_seconds: 2.8, paused: true,
               pause_reason: "replica 10.0.0.2:3306 lags 2.1 s, more than max_replica_lag=1.5"}
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.module_args import (
    MIGRATION_SPEC, MYSQL_CONNECTION_SPEC, argument_spec, bounds_problem)
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import HAS_PYMYSQL, PYMYSQL_IMPORT_ERROR, connect
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_runner import sync_info


def main():
    module = AnsibleModule(argument_spec=argument_spec(MYSQL_CONNECTION_SPEC, MIGRATION_SPEC), supports_check_mode=True)
    problem = bounds_problem(module.params)
    if problem:
        module.fail_json(msg=problem)
    if not HAS_PYMYSQL:
        module.fail_json(msg=missing_required_lib('PyMySQL'), exception=PYMYSQL_IMPORT_ERROR)
    try:
        migration = parse_migration(module.params['migration'])
        conn = connect(module.params)
        try:
            entries = sync_info(conn, module.params['database'], migration)
        finally:
            conn.close()
    except ZdtError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # pylint: disable=broad-except  # driver errors surface with their server message
        module.fail_json(msg='reading the sync state failed: %s' % (exc,))
    module.exit_json(changed=False, sync=entries)


if __name__ == '__main__':
    main()
