#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: mysql_expand
short_description: Apply the expand or contract phase of a migration, or roll its expand back, with online DDL
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - Reads a zdt.bluegreen migration file and applies its C(expand) operations (O(phase=expand)), its C(contract)
    operations (O(phase=contract)) or undoes the expand operations in reverse order (O(phase=rollback)).
  - The whole migration is validated before anything runs; an invalid field fails with a message naming it,
    for example C(expand[0].create_table.columns[2].type), before the module even connects.
  - Every referenced table, column and index is checked against the live schema before the first statement runs.
  - Idempotent from the live schema (information_schema), the changelog table and the module's own
    C(zdt_migration_state) and C(zdt_migration_step) tables, so a run killed halfway completes on the next run
    without re-running a finished step, and a second run reports C(changed=false).
  - ALTER statements ask for C(ALGORITHM=INSTANT) or C(ALGORITHM=INPLACE, LOCK=NONE). A change the server
    cannot make online fails naming the operation; the table is never copied silently.
  - C(alter_column) with C(rename_to) adds the new column (the triggers of M(zdt.bluegreen.mysql_trigger_sync) keep it
    equal to the old one); the contract phase drops the old column. Without C(rename_to) it changes the column in
    place, which is planned only for a widening. Its C(up) and C(down) expressions are resolved by the server before
    anything changes, in check mode too; a failing one fails naming it, for example C(expand[1].alter_column.up).
  - C(add_foreign_key) counts the orphans first and fails naming up to five before any change (check mode too), adds
    the key in place with the session's foreign key checks off, counts again once it exists, and drops it again and
    fails naming the orphans written meanwhile.
  - Every DDL runs with a short session C(lock_wait_timeout) and is retried with exponential backoff, so a long
    transaction cannot queue the site's queries behind the ALTER for longer than O(lock_wait_timeout) at a time.
  - The migration file's checksum is stored when a phase starts; running a phase again with an edited file fails
    naming the migration id (drift). O(phase=rollback) is refused once the contract phase ran.
  - O(phase=contract) is refused while the migration's sync triggers exist (drop them with
    M(zdt.bluegreen.mysql_trigger_sync) O(zdt.bluegreen.mysql_trigger_sync#module:state=absent) once the old version is stopped).
    A contract operation on a table, column or index that does not exist fails naming the field, unless this contract
    already dropped it.
  - When the expand phase completes, a row is written to the dbdeploy-style changelog table O(changelog_table);
    a rollback removes it.
extends_documentation_fragment:
  - zdt.bluegreen.mysql
  - zdt.bluegreen.migration
  - zdt.bluegreen.ddl
options:
  phase:
    description:
      - C(expand) adds what the new version needs, C(contract) removes what only the old version used,
        C(rollback) undoes C(expand) in reverse (refused once C(contract) ran).
    type: str
    choices: [expand, contract, rollback]
    default: expand
  changelog_table:
    description:
      - Name of the dbdeploy changelog table (columns C(change_number), C(complete_dt), C(applied_by), C(description)).
      - Created when missing.
    type: str
    default: changelog
  sync_triggers_dropped:
    description:
      - Check mode only, with O(phase=contract) - plan the contract as a run that first drops this migration's sync
        triggers (M(zdt.bluegreen.mysql_trigger_sync) O(zdt.bluegreen.mysql_trigger_sync#module:state=absent), which
        check mode does not run) would find the schema. Outside check mode it is refused - a real contract must find
        the sync triggers gone.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Changes nothing and returns the exact statements it would run.
  diff_mode:
    support: full
    description: Returns C(SHOW CREATE TABLE) of the affected tables before and after.
notes:
  - C(sql) operations run their statement as given (one statement each); they are tracked as steps, not checked
    against the schema. A C(sql) step killed while running is run again on the next run.
'''

EXAMPLES = r'''
- name: Expand the schema for version 2
  zdt.bluegreen.mysql_expand:
    database: app
    migration: /srv/app/migrations/002_addresses.yml
    login_user: deploy
    login_password: "{{ deploy_password }}"

- name: Remove what only version 1 used (after the sync triggers are dropped)
  zdt.bluegreen.mysql_expand:
    database: app
    migration: /srv/app/migrations/002_addresses.yml
    phase: contract
    login_unix_socket: /run/mysqld/mysqld.sock

- name: Undo the expand phase
  zdt.bluegreen.mysql_expand:
    database: app
    migration: /srv/app/migrations/002_addresses.yml
    phase: rollback
    lock_wait_timeout: 2
    ddl_retries: 5
'''

RETURN = r'''
statements:
  description: The DDL statements run (in check mode, the statements that would run), in order.
  returned: always
  type: list
  elements: str
  sample: ["ALTER TABLE `users` ADD COLUMN `email` VARCHAR(255) NULL, ALGORITHM=INSTANT"]
skipped_ops:
  description: Operations skipped because the live schema already had them (or they were already done).
  returned: always
  type: list
  elements: dict
  sample: [{"op": "expand[0]", "kind": "create_table", "reason": "table addresses exists"}]
migration_id:
  description: The id of the migration.
  returned: always
  type: int
  sample: 2
phase:
  description: The phase applied.
  returned: always
  type: str
  sample: expand
tables:
  description: The tables the statements change.
  returned: always
  type: list
  elements: str
  sample: [addresses]
'''

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.module_args import (
    DDL_SPEC, MIGRATION_SPEC, MYSQL_CONNECTION_SPEC, argument_spec, bounds_problem)
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import HAS_PYMYSQL, PYMYSQL_IMPORT_ERROR, connect
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_apply import apply_phase
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import validate_identifier


def main():
    spec = argument_spec(
        MYSQL_CONNECTION_SPEC, MIGRATION_SPEC, DDL_SPEC,
        phase=dict(type='str', default='expand', choices=['expand', 'contract', 'rollback']),
        changelog_table=dict(type='str', default='changelog'),
        sync_triggers_dropped=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    result = dict(changed=False, statements=[], skipped_ops=[], tables=[], phase=p['phase'], migration_id=None)

    try:
        problem = bounds_problem(p)
        if problem:
            module.fail_json(msg=problem, **result)
        validate_identifier(p['database'], 'database')
        validate_identifier(p['changelog_table'], 'changelog_table')
        if not isinstance(p['migration'], (dict, str)):
            module.fail_json(msg='migration: must be a path to a migration file or a mapping', **result)
        migration = parse_migration(p['migration'])
    except ZdtError as exc:
        module.fail_json(msg=str(exc), **result)
    result['migration_id'] = migration.id

    if not HAS_PYMYSQL:
        module.fail_json(msg=missing_required_lib('PyMySQL'), exception=PYMYSQL_IMPORT_ERROR, **result)

    conn = None
    try:
        conn = connect(p)
        outcome = apply_phase(conn, migration, p['phase'], p['database'], changelog_table=p['changelog_table'],
                              lock_wait_timeout=p['lock_wait_timeout'], ddl_retries=p['ddl_retries'],
                              check_mode=module.check_mode, want_diff=module._diff,
                              sync_triggers_dropped=p['sync_triggers_dropped'])
    except ZdtError as exc:
        module.fail_json(msg=str(exc), **result)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg='unexpected error: %s' % exc, exception=traceback.format_exc(), **result)
    finally:
        if conn is not None:
            try:
                conn.close()
            except Exception:  # pylint: disable=broad-except
                pass

    result.update(changed=outcome.changed, statements=outcome.statements, tables=outcome.tables,
                  skipped_ops=[dict(op=s.op.field, kind=s.op.kind, reason=s.reason) for s in outcome.skipped])
    if module._diff:
        result['diff'] = dict(before=outcome.before, after=outcome.after,
                              before_header='tables before %s' % p['phase'], after_header='tables after %s' % p['phase'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
