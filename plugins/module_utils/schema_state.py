# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``mysql_expand``'s own bookkeeping: phase and step state, drift detection and the dbdeploy changelog (no Ansible import).

``zdt_migration_state`` holds one row per (migration, phase) with the migration file's checksum, so an edited file
is refused once a phase started (drift).  ``zdt_migration_step`` records every step before and after it runs, so a
killed run resumes without re-running a finished step.  The changelog row is dbdeploy's, written when expand
completes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.zdt.bluegreen.plugins.module_utils import mysql_inspect
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError, DriftError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import query
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_errors import ER_BAD_FIELD, ER_NO_SUCH_TABLE, error_code
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_ddl import run_ddl
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import quote_identifier
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_sql import column_list

STATE_TABLE = 'zdt_migration_state'
STEP_TABLE = 'zdt_migration_step'

STATE_DDL = (
    'CREATE TABLE IF NOT EXISTS %s (migration_id BIGINT NOT NULL, phase VARCHAR(16) NOT NULL, checksum CHAR(64) NOT NULL, '
    'status VARCHAR(16) NOT NULL, steps_done INT NOT NULL DEFAULT 0, started_at DATETIME(6) NOT NULL, finished_at DATETIME(6) NULL, '
    'PRIMARY KEY (migration_id, phase)) ENGINE=InnoDB' % quote_identifier(STATE_TABLE))
STEP_DDL = (
    'CREATE TABLE IF NOT EXISTS %s (migration_id BIGINT NOT NULL, phase VARCHAR(16) NOT NULL, step_index INT NOT NULL, '
    'op VARCHAR(32) NOT NULL, status VARCHAR(16) NOT NULL, statement MEDIUMTEXT NULL, updated_at DATETIME(6) NOT NULL, '
    'PRIMARY KEY (migration_id, phase, step_index)) ENGINE=InnoDB' % quote_identifier(STEP_TABLE))


def changelog_ddl(table):
    """dbdeploy's changelog table."""
    return ('CREATE TABLE IF NOT EXISTS %s (change_number BIGINT NOT NULL, complete_dt TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, '
            'applied_by VARCHAR(100) NOT NULL, description VARCHAR(500) NOT NULL, PRIMARY KEY (change_number)) ENGINE=InnoDB'
            % quote_identifier(table, 'changelog_table'))


def _missing_table(exc):
    return error_code(exc) == ER_NO_SUCH_TABLE


def read_state(conn, migration_id):
    """(phase -> {checksum, status, steps_done}, (phase, index) -> status); empty when the tables do not exist yet."""
    phases = {}
    steps = {}
    try:
        for phase, checksum, status, steps_done in query(
                conn, 'SELECT phase, checksum, status, steps_done FROM %s WHERE migration_id = %%s' % quote_identifier(STATE_TABLE),
                (migration_id,)):
            phases[phase] = dict(checksum=checksum, status=status, steps_done=steps_done)
    except Exception as exc:  # pylint: disable=broad-except
        if not _missing_table(exc):
            raise
    try:
        for phase, index, status in query(
                conn, 'SELECT phase, step_index, status FROM %s WHERE migration_id = %%s' % quote_identifier(STEP_TABLE), (migration_id,)):
            steps[(phase, int(index))] = status
    except Exception as exc:  # pylint: disable=broad-except
        if not _missing_table(exc):
            raise
    return phases, steps


def check_drift(migration, phases):
    for phase in ('expand', 'contract', 'rollback'):
        stored = phases.get(phase)
        if stored and stored['checksum'] != migration.checksum:
            raise DriftError('migration %d: the migration file changed after its %s phase started (stored checksum %s..., file %s...); '
                             'a started migration must not be edited - revert the file or write a new migration'
                             % (migration.id, phase, stored['checksum'][:12], migration.checksum[:12]))


def changelog_columns(conn, database, table):
    """Lower-case column name -> mysql_inspect.columns entry of the changelog table ({} when it does not exist)."""
    return dict((name.lower(), col) for name, col in mysql_inspect.columns(conn, database, table).items())


def changelog_has(conn, table, migration_id):
    try:
        rows = query(conn, 'SELECT 1 FROM %s WHERE change_number = %%s' % quote_identifier(table, 'changelog_table'), (migration_id,))
    except Exception as exc:  # pylint: disable=broad-except
        if _missing_table(exc):
            return False
        if error_code(exc) == ER_BAD_FIELD:
            raise DatabaseError('changelog table %s has no change_number column (expected dbdeploy\'s change_number, complete_dt, '
                                'applied_by, description)' % table)
        raise
    return bool(rows)


def check_changelog_shape(conn, database, table):
    cols = changelog_columns(conn, database, table)
    if not cols:
        return
    missing = [c for c in ('change_number', 'complete_dt', 'applied_by', 'description') if c not in cols]
    if missing:
        raise DatabaseError('changelog table %s lacks dbdeploy column(s) %s' % (table, ', '.join(missing)))
    extra = [name for name, col in cols.items()
             if name not in ('change_number', 'complete_dt', 'applied_by', 'description', 'delta_set', 'start_dt')
             and not col['nullable'] and col['default'] is None and 'auto_increment' not in (col['extra'] or '')]
    if extra:
        raise DatabaseError('changelog table %s has NOT NULL column(s) without a default this module cannot fill: %s'
                            % (table, ', '.join(extra)))


def insert_changelog(conn, database, table, migration):
    cols = changelog_columns(conn, database, table)
    names = ['change_number', 'complete_dt', 'applied_by', 'description']
    values = ['%s', 'CURRENT_TIMESTAMP', 'LEFT(CURRENT_USER(), 100)', 'LEFT(%s, 500)']
    args = [migration.id, migration.description]
    if 'delta_set' in cols:
        names.append('delta_set')
        values.append('%s')
        args.append('Main')
    if 'start_dt' in cols:
        names.append('start_dt')
        values.append('CURRENT_TIMESTAMP')
    query(conn, 'INSERT INTO %s (%s) VALUES (%s)' % (quote_identifier(table, 'changelog_table'), column_list(names), ', '.join(values)), args)


def record_phase(conn, migration, phase, status, steps_done=None):
    query(conn, 'INSERT INTO %s (migration_id, phase, checksum, status, steps_done, started_at) VALUES (%%s, %%s, %%s, %%s, %%s, NOW(6)) '
                'ON DUPLICATE KEY UPDATE status = VALUES(status), steps_done = VALUES(steps_done), '
                'finished_at = IF(VALUES(status) = \'done\', NOW(6), NULL)' % quote_identifier(STATE_TABLE),
          (migration.id, phase, migration.checksum, status, steps_done or 0))


def record_step(conn, migration_id, phase, index, op, status, statement):
    query(conn, 'INSERT INTO %s (migration_id, phase, step_index, op, status, statement, updated_at) VALUES (%%s, %%s, %%s, %%s, %%s, %%s, NOW(6)) '
                'ON DUPLICATE KEY UPDATE status = VALUES(status), statement = VALUES(statement), updated_at = NOW(6)'
          % quote_identifier(STEP_TABLE), (migration_id, phase, index, op, status, statement))


def _bookkeeping_ddl(conn, sql, what, lock_wait_timeout):
    # CREATE TABLE IF NOT EXISTS of our own tables: nobody else holds their locks, so a longer wait is harmless
    run_ddl(conn, sql, what, lock_wait_timeout=max(int(lock_wait_timeout), 5), retries=0)


def ensure_state_tables(conn, lock_wait_timeout):
    _bookkeeping_ddl(conn, STATE_DDL, 'creating %s' % STATE_TABLE, lock_wait_timeout)
    _bookkeeping_ddl(conn, STEP_DDL, 'creating %s' % STEP_TABLE, lock_wait_timeout)


def record_changelog(conn, database, table, migration, lock_wait_timeout):
    """Write the migration's changelog row (creating the table when missing) unless it is there."""
    if changelog_has(conn, table, migration.id):
        return
    _bookkeeping_ddl(conn, changelog_ddl(table), 'creating changelog table %s' % table, lock_wait_timeout)
    check_changelog_shape(conn, database, table)
    insert_changelog(conn, database, table, migration)


def forget(conn, changelog_table, migration_id):
    """After a rollback: no changelog row, no state of the migration (a later expand starts afresh)."""
    try:
        query(conn, 'DELETE FROM %s WHERE change_number = %%s' % quote_identifier(changelog_table, 'changelog_table'), (migration_id,))
    except Exception as exc:  # pylint: disable=broad-except
        if not _missing_table(exc):
            raise
    query(conn, 'DELETE FROM %s WHERE migration_id = %%s' % quote_identifier(STEP_TABLE), (migration_id,))
    query(conn, 'DELETE FROM %s WHERE migration_id = %%s' % quote_identifier(STATE_TABLE), (migration_id,))
