#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: mysql_trigger_sync
short_description: Keep the old and the new schema shape equal with triggers, backfill and verify
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - For every C(sync) entry of a migration, creates triggers that mirror writes from the old shape to the new one
    (and back when C(direction=both)), backfills the existing rows in chunks and verifies both sides by checksum.
  - "Cross-table entries (C(to.table) differs): rows are joined by C(to.key = from.key); C(to.key) needs a UNIQUE index.
    An old row whose mapped columns are all NULL has no new row; deleting the new row sets the old columns to NULL;
    deleting the old row deletes the new one."
  - "Same-table entries: on insert the non-NULL side wins, on update the side the statement changed wins, and when both
    changed to different values C(from) wins."
  - "Each C(alter_column) expand operation with C(rename_to) is a same-table entry too (numbered after the C(sync) list, errors
    name the operation, for example C(expand[1].alter_column.up)): its triggers set the new column through C(up) and the old
    one through C(down); on insert the old column goes through C(down) only when the statement gave the new column and left
    the old one at its default. The backfill fills only rows that are not in sync, and a row is in sync when
    C(new <=> up(old)) or C(old <=> down(new))."
  - "Mapped pairs of a cross-table entry (entry-level C(columns) of C({from, to, up, down})) apply C(up) in the forward triggers
    and the copy and C(down) in the backward triggers. Expressions are SQL written by the user (an escape hatch, like an
    C(sql) step); the server resolves each one in a C(SELECT ... LIMIT 0) before anything changes."
  - "C(from.key) may be a composite primary key (a list of columns, C(to.key) as many): the copy chunks, checkpoints and
    resumes on the whole key."
  - The backfill is exact under concurrent writes, pauses while C(Threads_running) exceeds O(max_threads_running) or a replica
    in O(replicas) lags more than O(max_replica_lag), checkpoints every chunk in table C(zdt_sync_progress) so a killed run
    resumes, and runs at most once per migration at a time (a server-side named lock C(zdt_backfill_<database>_<id>)).
  - "Replica lag is read from a heartbeat, never from C(Seconds_Behind_Master): every slice of the copy writes the module's
    clock into its checkpoint row on the primary (and so does every poll while the copy is paused), and each replica's lag is
    the time since the newest heartbeat it shows. Before each chunk the copy waits while any replica lags more than
    O(max_replica_lag); a replica that cannot be reached pauses it for at most O(replica_timeout) seconds, then the task fails
    and a rerun resumes from the checkpoint. M(zdt.bluegreen.mysql_sync_info) shows C(paused) and C(pause_reason) meanwhile."
  - "Before anything changes the module checks the server: its version (MariaDB 10.2.3 or MySQL 5.7.2 and later), that it is
    no Galera node (C(wsrep_on=ON) is refused until supported), that with binary logging on C(binlog_format) is not
    C(STATEMENT) (InnoDB refuses to log the copy's READ COMMITTED writes as statements), the privilege binary logging needs to
    create triggers, and that every replica answers and is not the primary itself. A problem fails the task naming the setting
    and the fix."
  - "Order for O(state=present): forward (old to new) and same-table triggers, then the backfill, then the backward (new to old)
    triggers, then verify. The new version must not write before this module has finished (its rows are not all there yet);
    creating the backward triggers after the copy keeps them from firing for every copied row."
  - "Exactness: every slice of the copy is one READ COMMITTED transaction that reads its source rows with a locking read
    (C(LOCK IN SHARE MODE): record locks, no gap locks), upserts exactly their latest values and advances the checkpoint; a
    concurrent writer's trigger runs either before the slice read (and the slice copies the same value) or after its commit
    (and overwrites it with the newer value). Slices last about 20 ms, so an application write to a row being copied waits
    at most one slice; chunks (sized to O(chunk_time)) group slices for throttling and progress. Nothing is copied with
    IGNORE; any warning fails the slice."
  - "Copy method, chosen from the live schema and the server: into a target without an AUTO_INCREMENT column one locking
    C(INSERT ... SELECT ... ON DUPLICATE KEY UPDATE) per slice. Into a target with one (the seed's C(addresses)) under
    C(innodb_autoinc_lock_mode=2), a plain locking C(INSERT ... SELECT) of the rows the target does not hold yet (rows the
    triggers wrote are left out; one a trigger writes meanwhile makes the slice run again). Otherwise (lock mode 0 or 1, or
    a target that held rows before the sync) the server builds a multi-row C(INSERT ... VALUES) from the locked rows and runs
    it, because under lock mode 1 an C(INSERT ... SELECT) would hold the table-level AUTO-INC lock for its whole run and
    stall the application's inserts. This last method is slower (the rows are turned into SQL text and parsed again).
    An C(INSERT ... SELECT ... ON DUPLICATE KEY UPDATE) into an AUTO_INCREMENT target is never used: under lock mode 2 it
    was measured to update other rows than its own."
  - "The copy's session skips foreign key checks only when they can neither fail nor act: every foreign key of the target
    is C(to.key -> from.table(from.key)) (the slice holds a shared lock on each copied row's parent), no foreign key
    references the target and the target has no trigger but this sync's. Otherwise the checks stay on. Application
    sessions and the triggers always check."
  - "Trigger recursion guard: a session variable whose value is the statement's start time, cleared by an EXIT handler that
    re-raises any error, so a failing statement never leaves the sync disabled for its (pooled) connection."
  - Trigger names start with C(zdt_m<id>_s<index>_); the module never drops or replaces a trigger it did not create, and
    user triggers on the same tables and events keep working. With a foreign key C(to.key -> from.key ON DELETE CASCADE)
    to C(from.table) of the same database the forward delete trigger is not needed and not created.
  - Triggers are created with the login user as definer (C(CURRENT_USER)); they keep working as long as that account
    exists, independent of the session. With binary logging on, the login user needs C(SUPER) unless the server sets
    C(log_bin_trust_function_creators=1); the module checks this before changing anything.
extends_documentation_fragment:
  - zdt.bluegreen.mysql
  - zdt.bluegreen.migration
  - zdt.bluegreen.ddl
options:
  state:
    description:
      - V(present) creates the triggers, then backfills and verifies. V(absent) drops exactly the triggers and the
        checkpoint rows this module created for the migration.
    type: str
    choices: [present, absent]
    default: present
  backfill:
    description:
      - Copy the existing rows after the triggers are in place.
    type: bool
    default: true
  verify:
    description:
      - Compare both sides by chunked checksums; any mismatch fails the task and names up to ten differing keys.
    type: bool
    default: true
  chunk_time:
    description:
      - Target duration of one backfill chunk in seconds; the chunk size adapts to it.
    type: float
    default: 0.5
  chunk_size:
    description:
      - Rows in the first chunk.
    type: int
    default: 1000
  max_threads_running:
    description:
      - Pause the backfill while the server's C(Threads_running) is above this value. V(0) disables throttling.
    type: int
    default: 25
  replicas:
    description:
      - Replicas of the server whose lag the backfill respects, each given by connection options.
      - An option an entry leaves out takes the value of the primary's (the module's own) option, except that an entry
        naming O(replicas[].login_host) or O(replicas[].login_port) never takes the primary's O(login_unix_socket).
        An entry must name at least one of O(replicas[].login_host), O(replicas[].login_port) and
        O(replicas[].login_unix_socket), and must not reach the primary itself (checked by C(server_id)).
      - The login user needs C(SELECT) on the database on each replica.
    type: list
    elements: dict
    default: []
    suboptions:
      login_user:
        description: The username on the replica.
        type: str
      login_password:
        description: The password on the replica.
        type: str
      login_host:
        description: Host of the replica.
        type: str
      login_port:
        description: Port of the replica.
        type: int
      login_unix_socket:
        description: Unix socket of a replica on the host the module runs on.
        type: str
      config_file:
        description: Config file with the C([client]) user and password for the replica.
        type: path
      connect_timeout:
        description: Connection timeout in seconds; at most 10 and at most O(replica_timeout) are used.
        type: int
      ca_cert:
        description: Certificate Authority (CA) certificate for the replica.
        type: path
        aliases: [ ssl_ca ]
      client_cert:
        description: Client public key certificate for the replica.
        type: path
        aliases: [ ssl_cert ]
      client_key:
        description: Client private key for the replica.
        type: path
        aliases: [ ssl_key ]
      check_hostname:
        description: Whether to validate the replica's host name against its TLS certificate.
        type: bool
  max_replica_lag:
    description:
      - Seconds a replica may lag behind the heartbeat before the backfill pauses before its next chunk.
      - A chunk that starts runs to its end (at most about O(chunk_time)), so a replica's lag can exceed this by about the
        replication of one chunk.
    type: float
    default: 1.5
  replica_timeout:
    description:
      - Seconds a replica may be unreachable (or show none of the backfill's heartbeats) before the task fails. Until then the
        backfill pauses. A rerun resumes from the checkpoint.
      - Also the longest O(verify_replicas) waits for a replica to catch up or answer.
    type: float
    default: 60
  verify_replicas:
    description:
      - After verify, wait until each replica has caught up with the primary, then compare its checksums of the mapped columns
        (both shapes) with the primary's, range by range while the application writes. Any difference fails the task naming
        the replica and up to ten keys.
      - Keys that changed on the primary in every one of several comparisons are reported in C(unverified_keys), not as
        differences.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reports the triggers it would create and the backfill's rows_total; changes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: partial
    details: The diff lists the sync triggers before and after; rows copied by the backfill are not part of the diff.
notes:
  - O(lock_wait_timeout) and O(ddl_retries) apply to creating and dropping the triggers. A second run of the same
    migration waits O(lock_wait_timeout) times O(ddl_retries) seconds for the running one, then fails naming the session
    that holds the lock.
  - "Before anything changes, every synced column pair is checked: the target column must hold every value of the source
    column (integer range, decimal digits, string length and character set, enum values, fractional seconds), in both
    directions when C(direction=both); a column that the sync may set to NULL must be nullable. A pair that fails this
    fails the task naming the field, for example C(sync[0].to.columns[0])."
  - "Same-table sync: until the backfill has passed a row, writing NULL through the new column of that row is not a change
    the trigger can see (the new column is still NULL there)."
  - "Cross-table sync: the new table may have only two unique indexes, its primary key (C(to.key) or an AUTO_INCREMENT column)
    and the UNIQUE index on C(to.key); the module refuses others, since an upsert could match a different row through them."
  - Writes that the old shape cannot hold (a new row whose synced columns are all NULL) are not representable while the sync
    exists; verify reports them.
  - "A new table with an AUTO_INCREMENT key is backfilled without ever holding the table-level AUTO-INC lock for a whole chunk:
    with multi-row C(INSERT ... VALUES) statements built by the server, or under C(innodb_autoinc_lock_mode=2), which has no
    such lock, with plain C(INSERT ... SELECT) statements of the missing rows."
  - "The forward triggers write the new row with C(INSERT ... ON DUPLICATE KEY UPDATE) alone, never an C(UPDATE) first: under
    REPEATABLE READ an C(UPDATE) that finds no row gap-locks the key index, and two writes giving not yet copied old rows a
    new row would deadlock each other. On a new table with an AUTO_INCREMENT key, each such write that finds the row
    already there still uses up one id, so the ids get gaps."
'''

EXAMPLES = r'''
- name: Sync users' address columns into addresses, backfill and verify
  zdt.bluegreen.mysql_trigger_sync:
    login_host: 127.0.0.1
    login_user: deploy
    login_password: "{{ db_password }}"
    database: shop
    migration: migrations/002_addresses.yml
  async: 3600
  poll: 0
  register: sync_job

- name: The same, pausing while a replica lags more than a second, then comparing the replica with the primary
  zdt.bluegreen.mysql_trigger_sync:
    login_host: db1.example.com
    login_user: deploy
    login_password: "{{ db_password }}"
    database: shop
    migration: migrations/002_addresses.yml
    replicas:
      - login_host: db2.example.com
    max_replica_lag: 1
    verify_replicas: true

- name: Drop the sync triggers once the old version is gone
  zdt.bluegreen.mysql_trigger_sync:
    login_unix_socket: /run/mysqld/mysqld.sock
    database: shop
    migration: migrations/002_addresses.yml
    state: absent
'''

RETURN = r'''
triggers:
  description: Names of the sync triggers of the migration (state=present), or the ones dropped (state=absent).
  returned: always
  type: list
  elements: str
  sample: [zdt_m2_s0_fwd_del, zdt_m2_s0_fwd_upd, zdt_m2_s0_fwd_ins]
created:
  description: Triggers created by this run (or that would be created, in check mode).
  returned: state=present
  type: list
  elements: str
backfill:
  description: Backfill figures summed over the sync entries.
  returned: state=present
  type: dict
  contains:
    rows_copied:
      description: Rows written to the new shape by this run.
      type: int
    rows_total:
      description: Source rows to consider when the run started.
      type: int
    chunks:
      description: Chunks run by this run.
      type: int
    seconds:
      description: Wall time of the backfill.
      type: float
    rows_per_second:
      description: Rows considered per second.
      type: float
    resumed_from:
      description: The source key the copy restarted after (a list for a composite key), or null on a fresh run.
      type: raw
    throttled_seconds:
      description: Seconds the copy paused (replica lag, an unreachable replica, C(Threads_running)).
      type: float
    max_replica_lag_seen:
      description: The largest replica lag in seconds measured before a chunk, or null without O(replicas).
      type: float
verify_replicas:
  description: Per replica, the comparison with the primary (summed over the sync entries).
  returned: state=present and verify_replicas=true
  type: list
  elements: dict
  contains:
    replica:
      description: The replica, as host:port or unix socket.
      type: str
    rows_checked:
      description: Source rows compared.
      type: int
    mismatches:
      description: Keys whose values differ between the replica and the primary.
      type: int
    keys:
      description: Up to ten of those keys.
      type: list
    unverified:
      description: Keys that kept changing on the primary during every comparison.
      type: int
    unverified_keys:
      description: Up to ten of those keys.
      type: list
verify:
  description: Verification figures summed over the sync entries.
  returned: state=present
  type: dict
  contains:
    rows_checked:
      description: Source rows compared.
      type: int
    mismatches:
      description: Number of differing keys.
      type: int
    keys:
      description: Up to ten differing keys (only when the task failed on a mismatch).
      type: list
entries:
  description: Per sync entry details (triggers, backfill incl. strategy and max_chunk_seconds, verify).
  returned: state=present and not check mode
  type: list
  elements: dict
'''

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.module_args import (
    DDL_SPEC, MIGRATION_SPEC, MYSQL_CONNECTION_SPEC, REPLICA_OPTIONS, argument_spec, bounds_problem)
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import HAS_PYMYSQL, PYMYSQL_IMPORT_ERROR, connect
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_replicas import replicas_from_params
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_runner import sync_absent, sync_present
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_verify import SyncMismatch


def main():
    spec = argument_spec(
        MYSQL_CONNECTION_SPEC, MIGRATION_SPEC, DDL_SPEC,
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        backfill=dict(type='bool', default=True),
        verify=dict(type='bool', default=True),
        chunk_time=dict(type='float', default=0.5),
        chunk_size=dict(type='int', default=1000),
        max_threads_running=dict(type='int', default=25),
        replicas=dict(type='list', elements='dict', default=[], options=REPLICA_OPTIONS),
        max_replica_lag=dict(type='float', default=1.5),
        replica_timeout=dict(type='float', default=60),
        verify_replicas=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if not HAS_PYMYSQL:
        module.fail_json(msg=missing_required_lib('PyMySQL'), exception=PYMYSQL_IMPORT_ERROR)
    p = module.params
    problem = bounds_problem(p)
    if problem:
        module.fail_json(msg=problem)
    try:
        migration = parse_migration(p['migration'])
        replicas = replicas_from_params(p, p['replicas'], p['replica_timeout'])
        conn = connect(p)
    except ZdtError as exc:
        module.fail_json(msg=str(exc))
    try:
        if p['state'] == 'present':
            result = sync_present(conn, p['database'], migration, backfill=p['backfill'], verify=p['verify'],
                                  chunk_time=p['chunk_time'], chunk_size=p['chunk_size'],
                                  max_threads_running=p['max_threads_running'], lock_wait_timeout=p['lock_wait_timeout'],
                                  ddl_retries=p['ddl_retries'], check_mode=module.check_mode, replicas=replicas,
                                  max_replica_lag=p['max_replica_lag'], replica_timeout=p['replica_timeout'],
                                  verify_replicas=p['verify_replicas'])
        else:
            result = sync_absent(conn, p['database'], migration, lock_wait_timeout=p['lock_wait_timeout'],
                                 ddl_retries=p['ddl_retries'], check_mode=module.check_mode)
    except SyncMismatch as exc:
        details = dict(exc.result)
        if 'replicas' in details:
            module.fail_json(msg=str(exc), changed=True, verify_replicas=details['replicas'])
        module.fail_json(msg=str(exc), changed=True, verify=details)
    except ZdtError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # pylint: disable=broad-except  # driver errors surface with their server message
        module.fail_json(msg='migration %s: %s' % (migration.id, exc), exception=traceback.format_exc())
    finally:
        for replica in replicas:
            replica.close()
        try:
            conn.close()
        except Exception:  # pylint: disable=broad-except
            pass
    diff = result.pop('diff', None)
    if module._diff and diff is not None:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
