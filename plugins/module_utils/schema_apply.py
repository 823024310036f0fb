# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one phase of a migration for ``mysql_expand``: lock, check drift and order, plan, run, record (no Ansible import).

:func:`apply_phase` takes the per-database schema lock, reads the state (:mod:`schema_state`), loads the live schema
(:mod:`schema_model`), plans (:mod:`schema_plan`, which raises before anything runs) and runs the steps one by one
through :func:`mysql_ddl.run_ddl`, recording each in ``zdt_migration_step`` before and after it runs.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time
from collections import namedtuple

from ansible_collections.zdt.bluegreen.plugins.module_utils import mysql_lock
from ansible_collections.zdt.bluegreen.plugins.module_utils import schema_state
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError, SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_ddl import run_ddl
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import query
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_inspect import current_database, show_create_table, table_exists
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import quote_identifier
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_model import load_model, tables_of
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_plan import PHASES, is_sync_trigger_of, new_column, plan_steps
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_sql import INPLACE, drop_foreign_key_sql
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_expressions import check_expression


def lock_name(database):
    """One schema change per database at a time."""
    return mysql_lock.lock_name('zdt_schema.', database)


def show_create_tables(conn, tables):
    out = []
    for t in sorted(set(tables)):
        text = show_create_table(conn, t)
        out.append('-- table %s\n%s\n' % (t, text if text is not None else '-- (absent)'))
    return ''.join(out)


Result = namedtuple('Result', 'changed statements skipped tables before after')


def apply_phase(conn, migration, phase, database, changelog_table='changelog', lock_wait_timeout=1, ddl_retries=10,
                check_mode=False, want_diff=False, sleep=time.sleep, lock_timeout=30, log=None, sync_triggers_dropped=False):
    """Plan and (unless ``check_mode``) run ``phase`` of ``migration``; return a Result.

    ``sync_triggers_dropped`` (check mode only): plan the contract as a run that first drops this migration's sync
    triggers would find the schema - without them."""
    if phase not in PHASES:
        raise SpecError('phase', 'must be one of %s' % ', '.join(PHASES))
    if sync_triggers_dropped and not check_mode:
        raise SpecError('sync_triggers_dropped', 'only for check mode: a real contract must find the sync triggers gone')
    quote_identifier(changelog_table, 'changelog_table')
    locked = None
    if not check_mode:
        locked = mysql_lock.acquire(conn, lock_name(database), lock_timeout, 'another schema change is running on database %s' % database)
    try:
        return _apply_locked(conn, migration, phase, database, changelog_table, lock_wait_timeout, ddl_retries,
                             check_mode, want_diff, sleep, log, sync_triggers_dropped)
    finally:
        if locked:
            mysql_lock.release(conn, locked)


def _apply_locked(conn, migration, phase, database, changelog_table, lock_wait_timeout, ddl_retries, check_mode, want_diff, sleep, log,
                  sync_triggers_dropped=False):
    phases, step_status = schema_state.read_state(conn, migration.id)
    schema_state.check_drift(migration, phases)
    schema_state.check_changelog_shape(conn, database, changelog_table)
    in_changelog = schema_state.changelog_has(conn, changelog_table, migration.id)
    expand_done = in_changelog or phases.get('expand', {}).get('status') == 'done'

    contract_started = (phases.get('contract', {}).get('status') == 'done'
                        or any(p == 'contract' and st in ('running', 'ran') for (p, _i), st in step_status.items()))
    if phase == 'rollback' and contract_started:
        raise DatabaseError('migration %d: rollback refused, its contract phase already ran (status %s); the old shape is gone'
                            % (migration.id, phases.get('contract', {}).get('status', 'running')))
    if phase == 'contract' and not expand_done:
        raise DatabaseError('migration %d: contract refused, its expand phase has not completed' % migration.id)
    if phase == 'expand' and contract_started:
        # Past expand: re-planning expand would re-create what contract removed.
        return Result(False, [], [], [], '', '')
    if phase == 'rollback' and 'expand' not in phases and not in_changelog:
        return Result(False, [], [], [], '', '')

    model = load_model(conn, database, tables_of(migration, phase))
    if phase == 'expand':
        check_expressions(conn, model, migration)
    if sync_triggers_dropped:
        model.triggers = [t for t in model.triggers if not is_sync_trigger_of(migration, t['name'])]
    planned = plan_steps(model, migration, phase, step_status, changelog_done=in_changelog)
    for step in planned.steps:
        if step.action == 'add_foreign_key':
            refuse_orphans(conn, database, step, 'refused before any change')
    affected = sorted(set(t for s in planned.steps for t in s.tables))
    before = show_create_tables(conn, affected) if want_diff else ''

    needs_bookkeeping = (
        (phase == 'expand' and (not in_changelog or phases.get('expand', {}).get('status') not in (None, 'done')))
        or (phase == 'contract' and phases.get('contract', {}).get('status') != 'done')
        or (phase == 'rollback' and (bool(phases) or in_changelog)))
    if phase == 'expand' and in_changelog and not planned.steps and 'expand' not in phases:
        needs_bookkeeping = False   # applied earlier (e.g. by dbdeploy): nothing to record
    if check_mode:
        after = before
        if want_diff and planned.steps:
            after = before + '-- would run:\n' + ''.join('%s;\n' % s.statement for s in planned.steps)
        return Result(bool(planned.steps) or needs_bookkeeping, [s.statement for s in planned.steps], planned.skipped, affected,
                      before, after)
    if not planned.steps and not needs_bookkeeping:
        return Result(False, [], planned.skipped, affected, before, before)

    schema_state.ensure_state_tables(conn, lock_wait_timeout)
    schema_state.record_phase(conn, migration, phase, 'running')
    if phase == 'expand':
        for skip in planned.skipped:
            if skip.op.kind == 'add_foreign_key' and step_status.get((skip.phase, skip.index)) == 'running':
                # a killed run added the key but never counted the orphans written meanwhile
                _recheck_foreign_key(conn, database, skip, lock_wait_timeout, ddl_retries, sleep, log)
            if (skip.phase, skip.index) not in step_status:
                schema_state.record_step(conn, migration.id, phase, skip.index, skip.op.kind, 'present', None)
            elif step_status[(skip.phase, skip.index)] == 'running':
                schema_state.record_step(conn, migration.id, phase, skip.index, skip.op.kind, 'ran', None)   # ran, killed before recording
    ran = []
    for n, step in enumerate(planned.steps):
        schema_state.record_step(conn, migration.id, phase, step.index, step.op.kind, 'running', step.statement)
        try:
            if step.action == 'add_foreign_key':
                statement = _add_foreign_key(conn, database, step, lock_wait_timeout, ddl_retries, sleep, log)
            else:
                statement = run_ddl(conn, step.statement, step.describe(), lock_wait_timeout=lock_wait_timeout, retries=ddl_retries,
                                    fallback=step.fallback, database=database, tables=step.tables, sleep=sleep, log=log)
        except DatabaseError:
            # the server refused the statement (DDL is atomic on MariaDB 10.6+ / MySQL 8.0): nothing of it applied
            schema_state.record_step(conn, migration.id, phase, step.index, step.op.kind, 'failed', step.statement)
            raise
        ran.append(statement)
        schema_state.record_step(conn, migration.id, phase, step.index, step.op.kind, 'ran', statement)
        schema_state.record_phase(conn, migration, phase, 'running', n + 1)
    if phase == 'expand':
        schema_state.record_changelog(conn, database, changelog_table, migration, lock_wait_timeout)
        schema_state.record_phase(conn, migration, phase, 'done', len(ran))
    elif phase == 'contract':
        schema_state.record_phase(conn, migration, phase, 'done', len(ran))
    else:
        schema_state.forget(conn, changelog_table, migration.id)
    after = show_create_tables(conn, affected) if want_diff else ''
    return Result(True, ran, planned.skipped, affected, before, after)


ORPHAN_SAMPLE = 5


def orphans(conn, database, table, fk):
    """(count, up to ORPHAN_SAMPLE distinct key values) of rows of ``table`` whose foreign key columns are all set and
    match no row of the referenced table (MATCH SIMPLE: a row with a NULL column is not checked).  A plain read."""
    cols = ['c.%s' % quote_identifier(c, 'column') for c in fk.columns]
    where = ' AND '.join('%s IS NOT NULL' % c for c in cols)
    source = '%s AS c' % quote_identifier(table, 'table')
    if not table_exists(conn, database, table):
        return 0, []
    if table_exists(conn, database, fk.ref_table):
        on = ' AND '.join('p.%s = %s' % (quote_identifier(r, 'column'), c) for r, c in zip(fk.ref_columns, cols))
        source += ' LEFT JOIN %s AS p ON %s' % (quote_identifier(fk.ref_table, 'table'), on)
        where += ' AND p.%s IS NULL' % quote_identifier(fk.ref_columns[0], 'column')
    count = int(query(conn, 'SELECT COUNT(*) FROM %s WHERE %s' % (source, where))[0][0])
    sample = query(conn, 'SELECT DISTINCT %s FROM %s WHERE %s LIMIT %d' % (', '.join(cols), source, where, ORPHAN_SAMPLE)) if count else []
    return count, ['(%s)=(%s)' % (', '.join(fk.columns), ', '.join(repr(v) for v in row)) for row in sample]


def refuse_orphans(conn, database, step, when):
    """DatabaseError naming the orphans of an add_foreign_key ``step`` (a planned Step, or the Skip of a key that exists)."""
    fk = step.op.args['foreign_key']
    count, sample = orphans(conn, database, step.op.args['table'], fk)
    if count:
        raise DatabaseError('%s: %s: %d row(s) of %s reference no row of %s, e.g. %s; fix or delete them first'
                            % (step.op.describe(), when, count, step.op.args['table'], fk.ref_table, ', '.join(sample)))


def _add_foreign_key(conn, database, step, lock_wait_timeout, ddl_retries, sleep, log):
    """Add a foreign key online: the server does that in place only with the session's foreign_key_checks off, so rows
    written while it was added are not checked by the server - they are counted afterwards, and if any is an orphan the
    key is dropped again and the step fails naming them."""
    before = query(conn, 'SELECT @@SESSION.foreign_key_checks')[0][0]
    query(conn, 'SET SESSION foreign_key_checks = 0')
    try:
        statement = run_ddl(conn, step.statement, step.describe(), lock_wait_timeout=lock_wait_timeout, retries=ddl_retries,
                            database=database, tables=step.tables, sleep=sleep, log=log)
    finally:
        query(conn, 'SET SESSION foreign_key_checks = %s', (int(before),))
    _recheck_foreign_key(conn, database, step, lock_wait_timeout, ddl_retries, sleep, log)
    return statement


def _recheck_foreign_key(conn, database, step, lock_wait_timeout, ddl_retries, sleep, log):
    fk = step.op.args['foreign_key']
    table = step.op.args['table']
    try:
        refuse_orphans(conn, database, step, 'orphans were written while the key was added, the key was dropped again')
    except DatabaseError:
        run_ddl(conn, drop_foreign_key_sql(table, fk.name), 'dropping foreign key %s again' % fk.name, lock_wait_timeout=lock_wait_timeout,
                retries=ddl_retries, fallback=drop_foreign_key_sql(table, fk.name, INPLACE), database=database, tables=(table,),
                sleep=sleep, log=log)
        raise


def check_expressions(conn, model, migration):
    """Have the server resolve every alter_column's up and down over the live table before anything changes.

    ``up`` may name the columns the table has before the expand; ``down`` those and the new columns (added virtually
    when the expand has not added them yet).  SpecError names the expression, e.g. ``expand[1].alter_column.up``."""
    ops = [op for op in migration.expand if op.kind == 'alter_column' and op.args['rename_to'] is not None]
    for op in ops:
        a = op.args
        t = model.table(a['table'])
        coldef = t.column_defs.get(a['column'].lower()) if t is not None else None
        if coldef is None:
            continue    # the planner names the missing table or column
        news = dict((o.args['rename_to'], new_column(o, t.column_defs[o.args['column'].lower()], o.args['rename_to']).type)
                    for o in ops if o.args['table'] == a['table'] and o.args['column'].lower() in t.column_defs)
        live = [t.columns[k] for k in t.columns]
        new_lower = set(n.lower() for n in news)
        old_columns = [c for c in live if c.lower() not in new_lower]
        field = op.field + '.alter_column'
        if a['up'] is not None:
            check_expression(conn, a['table'], a['up'], live, news, field + '.up', available=old_columns)
        if a['down'] is not None:
            check_expression(conn, a['table'], a['down'], live, news, field + '.down')


def plan(conn, migration, phase, database=None, changelog_table='changelog'):
    """The steps ``phase`` would run now (read-only): a list of Step, each with its exact ``statement``."""
    if database is None:
        database = current_database(conn)
    phases, step_status = schema_state.read_state(conn, migration.id)
    schema_state.check_drift(migration, phases)
    in_changelog = schema_state.changelog_has(conn, changelog_table, migration.id)
    model = load_model(conn, database, tables_of(migration, phase))
    return plan_steps(model, migration, phase, step_status, changelog_done=in_changelog).steps
