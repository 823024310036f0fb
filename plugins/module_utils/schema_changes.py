# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan and run a migration's expand / contract / rollback phase (online DDL, resumable, drift-checked).

Planning is pure: :func:`plan_steps` walks the ops against a :class:`SchemaModel` of the live schema,
skips what is already there, checks every referenced table/column/index/trigger and raises before
anything runs.  :func:`apply_phase` loads the model from information_schema, checks drift and phase
order against the ``zdt_migration_state`` table, runs the steps one by one (each recorded in
``zdt_migration_step`` before and after it runs, so a killed run resumes), and writes the dbdeploy
changelog row when expand completes.

Every DDL runs with ``SET SESSION lock_wait_timeout = n`` and is retried with exponential backoff on
lock-wait timeouts, so a long transaction never stacks the site's queries behind our ALTER for longer
than ``n`` seconds at a time.  ALTERs ask for ``ALGORITHM=INSTANT`` or ``ALGORITHM=INPLACE, LOCK=NONE``;
a change the server cannot make online fails naming the op, it is never silently copied.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import random
import re
import time
from collections import OrderedDict, namedtuple

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError, DriftError, SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import (
    ER_ALTER_OPERATION_NOT_SUPPORTED, ER_ALTER_OPERATION_NOT_SUPPORTED_REASON, ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT,
    ER_NO_SUCH_TABLE, error_code, error_message, query, server_version, show_create_table)
from ansible_collections.zdt.bluegreen.plugins.module_utils import mysql_connection
from ansible_collections.zdt.bluegreen.plugins.module_utils.sql_identifiers import quote_identifier

STATE_TABLE = 'zdt_migration_state'
STEP_TABLE = 'zdt_migration_step'
PHASES = ('expand', 'contract', 'rollback')

INSTANT = 'ALGORITHM=INSTANT'
INPLACE = 'ALGORITHM=INPLACE, LOCK=NONE'
ONLINE_REFUSED = (ER_ALTER_OPERATION_NOT_SUPPORTED, ER_ALTER_OPERATION_NOT_SUPPORTED_REASON)
RETRYABLE = (ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK)
ER_TABLE_EXISTS = 1050
ER_DUP_FIELDNAME = 1060
ER_DUP_KEYNAME = 1061
ER_CANT_DROP_FIELD_OR_KEY = 1091

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


# --------------------------------------------------------------------------------------------
# SQL rendering (pure)
# --------------------------------------------------------------------------------------------

def _cols(names):
    return ', '.join(quote_identifier(n, 'column') for n in names)


def create_table_sql(args):
    pk = set(c.lower() for c in args['primary_key'])
    parts = [c.sql(force_not_null=c.name.lower() in pk) for c in args['columns']]
    if args['primary_key']:
        parts.append('PRIMARY KEY (%s)' % _cols(args['primary_key']))
    for idx in args['indexes']:
        parts.append('%s %s (%s)' % ('UNIQUE KEY' if idx.unique else 'KEY', quote_identifier(idx.name), _cols(idx.columns)))
    for fk in args['foreign_keys']:
        text = 'CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s)' % (
            quote_identifier(fk.name), _cols(fk.columns), quote_identifier(fk.ref_table), _cols(fk.ref_columns))
        if fk.on_delete:
            text += ' ON DELETE ' + fk.on_delete
        if fk.on_update:
            text += ' ON UPDATE ' + fk.on_update
        parts.append(text)
    return 'CREATE TABLE %s (%s) ENGINE=InnoDB' % (quote_identifier(args['table']), ', '.join(parts))


def add_column_sql(table, column, algorithm=INSTANT):
    return 'ALTER TABLE %s ADD COLUMN %s, %s' % (quote_identifier(table), column.sql(), algorithm)


def create_index_sql(table, name, columns, unique=False, algorithm=INPLACE):
    return 'ALTER TABLE %s ADD %sINDEX %s (%s), %s' % (
        quote_identifier(table), 'UNIQUE ' if unique else '', quote_identifier(name), _cols(columns), algorithm)


def drop_index_sql(table, name, algorithm=INPLACE):
    return 'ALTER TABLE %s DROP INDEX %s, %s' % (quote_identifier(table), quote_identifier(name), algorithm)


def drop_columns_sql(table, columns, algorithm=INSTANT):
    return 'ALTER TABLE %s %s, %s' % (quote_identifier(table), ', '.join('DROP COLUMN %s' % quote_identifier(c) for c in columns), algorithm)


def drop_table_sql(table):
    return 'DROP TABLE %s' % quote_identifier(table)


# --------------------------------------------------------------------------------------------
# Schema model
# --------------------------------------------------------------------------------------------

class TableModel(object):
    """What the planner knows about one table: columns, indexes, foreign keys (names compared case-insensitively)."""

    def __init__(self, name, columns=(), indexes=None, foreign_keys=None):
        self.name = name
        self.columns = OrderedDict((c.lower(), c) for c in columns)
        self.indexes = OrderedDict()   # lower name -> {'name', 'columns': [..], 'unique'}
        for iname, spec in (indexes or {}).items():
            self.indexes[iname.lower()] = dict(name=iname, columns=list(spec['columns']), unique=bool(spec.get('unique')))
        self.foreign_keys = OrderedDict()
        for fname, spec in (foreign_keys or {}).items():
            self.foreign_keys[fname.lower()] = dict(name=fname, columns=list(spec['columns']), ref_table=spec['ref_table'],
                                                    ref_columns=list(spec['ref_columns']))

    def has_column(self, name):
        return name.lower() in self.columns

    def index_with_prefix(self, columns, exclude=None):
        want = [c.lower() for c in columns]
        for key, idx in self.indexes.items():
            if key == (exclude or '').lower():
                continue
            if [c.lower() for c in idx['columns'][:len(want)]] == want:
                return idx
        return None

    def indexed_columns(self):
        return set(c.lower() for idx in self.indexes.values() for c in idx['columns'])


class SchemaModel(object):
    """Tables (name -> TableModel), triggers and the server flavor/version the planner works against."""

    def __init__(self, database, tables=None, triggers=None, flavor='mariadb', version=(10, 11, 0), inbound_fks=None):
        self.database = database
        self.tables = dict(tables or {})
        self.triggers = list(triggers or [])
        self.flavor = flavor
        self.version = tuple(version)
        # referenced table -> list of (table, constraint name, referenced columns) of foreign keys pointing at it from other tables
        self.inbound_fks = dict(inbound_fks or {})

    def table(self, name):
        return self.tables.get(name)

    def instant_drop_column(self):
        if self.flavor == 'mariadb':
            return self.version >= (10, 4, 0)
        return self.version >= (8, 0, 29)

    def instant_add_column(self):
        if self.flavor == 'mariadb':
            return self.version >= (10, 3, 2)
        return self.version >= (8, 0, 12)


def _word_re(name):
    return re.compile(r'(?<![\w$])%s(?![\w$])' % re.escape(name), re.I | re.U)


def triggers_referencing(model, table, columns=None):
    """Triggers that would break if ``table`` (or its ``columns``) went away: (trigger name, on table, what)."""
    found = []
    table_re = _word_re(table)
    for trg in model.triggers:
        stmt = trg.get('statement') or ''
        on_table = trg.get('table') == table
        if columns is None:
            if not on_table and table_re.search(stmt):
                found.append((trg['name'], trg['table'], table))
            continue
        if not on_table and not table_re.search(stmt):
            continue
        for col in columns:
            if _word_re(col).search(stmt):
                found.append((trg['name'], trg['table'], '%s.%s' % (table, col)))
                break
    return found


def load_model(conn, database, table_names):
    """Build a SchemaModel for ``table_names`` (plus the triggers of the database) from information_schema."""
    flavor, version, _raw = server_version(conn)
    tables = {}
    inbound = {}
    names = sorted(set(table_names))
    for name in names:
        if not mysql_connection.table_exists(conn, database, name):
            continue
        tables[name] = TableModel(name, list(mysql_connection.columns(conn, database, name)), mysql_connection.indexes(conn, database, name),
                                  mysql_connection.foreign_keys(conn, database, name))
        # another schema's referencing table is named with its schema: no table of this plan can be it
        inbound[name] = [(fk['table'] if fk['schema'] == database else '%s.%s' % (fk['schema'], fk['table']), fk['name'], fk['ref_columns'])
                         for fk in mysql_connection.referencing_foreign_keys(conn, database, name)]
    return SchemaModel(database, tables, mysql_connection.triggers(conn, database), flavor, version, inbound)


def tables_of(migration, phase):
    """Every table a phase reads or changes (op tables and foreign-key targets)."""
    ops = migration.expand if phase in ('expand', 'rollback') else migration.contract
    names = set()
    for op in ops:
        if op.args.get('table'):
            names.add(op.args['table'])
        for fk in op.args.get('foreign_keys') or ():
            names.add(fk.ref_table)
    return names


# --------------------------------------------------------------------------------------------
# Planning (pure)
# --------------------------------------------------------------------------------------------

class Step(namedtuple('Step', 'phase index op statement fallback tables action')):
    """One statement to run. ``index`` is the op's position in its list (expand ops for rollback);
    ``fallback`` an alternative online statement tried when the server refuses ALGORITHM=INSTANT;
    ``action`` what it does (create_table, drop_column, run_sql_down, ...)."""

    __slots__ = ()

    @property
    def field(self):
        return self.op.field

    def describe(self):
        return self.op.describe() if self.phase != 'rollback' else 'rollback of %s' % self.op.describe()


Skip = namedtuple('Skip', 'phase index op reason')


class PlanResult(namedtuple('PlanResult', 'steps skipped')):
    __slots__ = ()


def _fail(op, message, sub=None):
    return DatabaseError('%s%s %s: %s' % (op.field, '.' + sub if sub else '', op.kind, message))


def _need_table(model, op, table, sub='table', allow_missing=False):
    t = model.table(table)
    if t is None and not allow_missing:
        raise _fail(op, 'table %s does not exist in database %s' % (table, model.database), '%s.%s' % (op.kind, sub))
    return t


def _need_columns(op, t, columns, sub):
    for i, c in enumerate(columns):
        if not t.has_column(c):
            raise _fail(op, 'column %s.%s does not exist' % (t.name, c), '%s.%s[%d]' % (op.kind, sub, i))


def _refuse_triggers(op, found, rollback=False):
    if found:
        name, on_table, what = found[0]
        raise _fail(op, '%strigger %s on table %s still references %s; drop the sync triggers first (mysql_trigger_sync state=absent)'
                    % ('cannot roll back: ' if rollback else '', name, on_table, what))


def _refuse_inbound_fks(model, op, table):
    inbound = list(model.inbound_fks.get(table, []))   # tables dropped earlier in this plan were removed from the list
    if inbound:
        raise _fail(op, 'table %s is still referenced by foreign key %s of table %s' % (table, inbound[0][1], inbound[0][0]))


def _plan_create_table(model, op, phase, index, steps, skipped):
    a = op.args
    existing = model.table(a['table'])
    if existing is not None:
        missing = [c.name for c in a['columns'] if not existing.has_column(c.name)]
        if missing:
            raise _fail(op, 'table %s already exists without column(s) %s; refusing to guess' % (a['table'], ', '.join(missing)))
        skipped.append(Skip(phase, index, op, 'table %s exists' % a['table']))
        return
    for i, fk in enumerate(a['foreign_keys']):
        sub = 'create_table.foreign_keys[%d].references' % i
        if fk.ref_table == a['table']:
            ref = TableModel(a['table'], [c.name for c in a['columns']], {'PRIMARY': dict(columns=a['primary_key'], unique=True)})
        else:
            ref = model.table(fk.ref_table)
        if ref is None:
            raise _fail(op, 'referenced table %s does not exist' % fk.ref_table, sub + '.table')
        for j, c in enumerate(fk.ref_columns):
            if not ref.has_column(c):
                raise _fail(op, 'referenced column %s.%s does not exist' % (fk.ref_table, c), '%s.columns[%d]' % (sub, j))
        if fk.ref_table != a['table'] and ref.index_with_prefix(fk.ref_columns) is None:
            raise _fail(op, 'referenced columns %s.(%s) are not the leading columns of an index' % (fk.ref_table, ', '.join(fk.ref_columns)),
                        sub + '.columns')
    steps.append(Step(phase, index, op, create_table_sql(a), None, (a['table'],), 'create_table'))
    idx = OrderedDict()
    if a['primary_key']:
        idx['PRIMARY'] = dict(columns=list(a['primary_key']), unique=True)
    for ix in a['indexes']:
        idx[ix.name] = dict(columns=list(ix.columns), unique=ix.unique)
    fks = OrderedDict((fk.name, dict(columns=fk.columns, ref_table=fk.ref_table, ref_columns=fk.ref_columns)) for fk in a['foreign_keys'])
    for fk in a['foreign_keys']:
        if fk.name not in idx and not any([c.lower() for c in v['columns'][:len(fk.columns)]] == [c.lower() for c in fk.columns]
                                          for v in idx.values()):
            idx[fk.name] = dict(columns=list(fk.columns), unique=False)   # InnoDB adds an index for the FK
        if fk.ref_table != a['table']:
            model.inbound_fks.setdefault(fk.ref_table, []).append((a['table'], fk.name, list(fk.ref_columns)))
    model.tables[a['table']] = TableModel(a['table'], [c.name for c in a['columns']], idx, fks)


def _plan_add_column(model, op, phase, index, steps, skipped):
    a = op.args
    t = _need_table(model, op, a['table'])
    col = a['column']
    if t.has_column(col.name):
        skipped.append(Skip(phase, index, op, 'column %s.%s exists' % (a['table'], col.name)))
        return
    algorithm = INSTANT if model.instant_add_column() else INPLACE
    fallback = add_column_sql(a['table'], col, INPLACE) if algorithm == INSTANT else None
    steps.append(Step(phase, index, op, add_column_sql(a['table'], col, algorithm), fallback, (a['table'],), 'add_column'))
    t.columns[col.name.lower()] = col.name


def _plan_create_index(model, op, phase, index, steps, skipped):
    a = op.args
    t = _need_table(model, op, a['table'])
    _need_columns(op, t, a['columns'], 'columns')
    existing = t.indexes.get(a['name'].lower())
    if existing is not None:
        if [c.lower() for c in existing['columns']] != [c.lower() for c in a['columns']] or existing['unique'] != a['unique']:
            raise _fail(op, 'index %s on %s exists with a different definition (%s%s)' % (
                a['name'], a['table'], 'UNIQUE ' if existing['unique'] else '', ', '.join(existing['columns'])))
        skipped.append(Skip(phase, index, op, 'index %s on %s exists' % (a['name'], a['table'])))
        return
    steps.append(Step(phase, index, op, create_index_sql(a['table'], a['name'], a['columns'], a['unique']), None, (a['table'],), 'create_index'))
    t.indexes[a['name'].lower()] = dict(name=a['name'], columns=list(a['columns']), unique=a['unique'])


def _drop_index_checks(op, t, name):
    for fk in t.foreign_keys.values():
        if t.index_with_prefix(fk['columns'], exclude=name) is None and t.index_with_prefix(fk['columns']) is not None:
            raise _fail(op, 'index %s on %s is needed by foreign key %s; create another index on (%s) first'
                        % (name, t.name, fk['name'], ', '.join(fk['columns'])))


def _plan_drop_index(model, op, phase, index, steps, skipped, done):
    a = op.args
    t = _need_table(model, op, a['table'], allow_missing=done)
    if t is None or a['name'].lower() not in t.indexes:
        if not done:
            raise _fail(op, 'index %s on %s does not exist (and this contract did not drop it)' % (a['name'], a['table']), 'drop_index.name')
        skipped.append(Skip(phase, index, op, 'index %s on %s is absent' % (a['name'], a['table'])))
        return
    _drop_index_checks(op, t, a['name'])
    steps.append(Step(phase, index, op, drop_index_sql(a['table'], t.indexes[a['name'].lower()]['name']), None, (a['table'],), 'drop_index'))
    del t.indexes[a['name'].lower()]


def _drop_columns_step(model, op, phase, index, t, columns, action, rollback=False):
    present = [t.columns[c.lower()] for c in columns if t.has_column(c)]
    if not present:
        return None
    _refuse_triggers(op, triggers_referencing(model, t.name, present), rollback)
    lowered = set(c.lower() for c in present)
    for fk in t.foreign_keys.values():
        hit = [c for c in fk['columns'] if c.lower() in lowered]
        if hit:
            raise _fail(op, 'column %s.%s is part of foreign key %s' % (t.name, hit[0], fk['name']))
    for ref_table, fk_name, ref_columns in model.inbound_fks.get(t.name, []):
        if any(c.lower() in lowered for c in ref_columns):
            raise _fail(op, 'column of %s is referenced by foreign key %s of table %s' % (t.name, fk_name, ref_table))
    if len(present) >= len(t.columns):
        raise _fail(op, 'cannot drop every column of %s (drop the table instead)' % t.name)
    indexed = lowered & t.indexed_columns()
    use_instant = model.instant_drop_column() and not indexed
    statement = drop_columns_sql(t.name, present, INSTANT if use_instant else INPLACE)
    fallback = drop_columns_sql(t.name, present, INPLACE) if use_instant else None
    for c in present:
        del t.columns[c.lower()]
    for key in list(t.indexes):
        remaining = [c for c in t.indexes[key]['columns'] if c.lower() not in lowered]
        if remaining:
            t.indexes[key]['columns'] = remaining
        else:
            del t.indexes[key]
    return Step(phase, index, op, statement, fallback, (t.name,), action)


def _plan_drop_columns(model, op, phase, index, steps, skipped, done):
    a = op.args
    t = _need_table(model, op, a['table'], allow_missing=done)
    if t is not None and not done:
        _need_columns(op, t, a['columns'], 'columns')
    step = _drop_columns_step(model, op, phase, index, t, a['columns'], 'drop_columns') if t is not None else None
    if step is None:
        skipped.append(Skip(phase, index, op, 'columns %s.(%s) are absent' % (a['table'], ', '.join(a['columns']))))
        return
    steps.append(step)


def _drop_table_step(model, op, phase, index, table, action, rollback=False):
    _refuse_triggers(op, triggers_referencing(model, table), rollback)
    _refuse_inbound_fks(model, op, table)
    del model.tables[table]
    for ref, lst in model.inbound_fks.items():
        model.inbound_fks[ref] = [entry for entry in lst if entry[0] != table]
    return Step(phase, index, op, drop_table_sql(table), None, (table,), action)


def _plan_drop_table(model, op, phase, index, steps, skipped, done):
    table = op.args['table']
    if model.table(table) is None:
        _need_table(model, op, table, allow_missing=done)
        skipped.append(Skip(phase, index, op, 'table %s is absent' % table))
        return
    steps.append(_drop_table_step(model, op, phase, index, table, 'drop_table'))


def plan_steps(model, migration, phase, step_status=None, changelog_done=False):
    """Return a PlanResult for ``phase`` against ``model`` (mutated to the expected end state).

    ``step_status`` maps (phase, index) -> status recorded in zdt_migration_step ('running', 'ran', 'present').
    ``changelog_done`` is True when the changelog already holds the migration (its expand completed).
    Raises DatabaseError naming the op for anything that cannot work, before anything runs.
    """
    if phase not in PHASES:
        raise SpecError('phase', 'must be one of %s' % ', '.join(PHASES))
    step_status = step_status or {}
    steps = []
    skipped = []
    if phase == 'expand':
        for i, op in enumerate(migration.expand):
            if op.kind == 'create_table':
                _plan_create_table(model, op, phase, i, steps, skipped)
            elif op.kind == 'add_column':
                _plan_add_column(model, op, phase, i, steps, skipped)
            elif op.kind == 'create_index':
                _plan_create_index(model, op, phase, i, steps, skipped)
            elif op.kind == 'sql':
                if changelog_done or step_status.get(('expand', i)) == 'ran':
                    skipped.append(Skip(phase, i, op, 'statement already ran'))
                else:
                    steps.append(Step(phase, i, op, op.args['up'], None, (), 'run_sql'))
    elif phase == 'contract':
        _refuse_live_sync(model, migration)
        for i, op in enumerate(migration.contract):
            # a step this contract started (a killed run may have finished its DDL) or ran: a missing object is expected
            done = step_status.get(('contract', i)) in ('running', 'ran', 'present')
            if op.kind == 'drop_columns':
                _plan_drop_columns(model, op, phase, i, steps, skipped, done)
            elif op.kind == 'create_index':
                _plan_create_index(model, op, phase, i, steps, skipped)
            elif op.kind == 'drop_index':
                _plan_drop_index(model, op, phase, i, steps, skipped, done)
            elif op.kind == 'drop_table':
                _plan_drop_table(model, op, phase, i, steps, skipped, done)
            elif op.kind == 'sql':
                if done:
                    skipped.append(Skip(phase, i, op, 'statement already ran'))
                else:
                    steps.append(Step(phase, i, op, op.args['up'], None, (), 'run_sql'))
    else:
        _plan_rollback(model, migration, step_status, changelog_done, steps, skipped)
    return PlanResult(steps, skipped)


def _refuse_live_sync(model, migration):
    """Contract removes what only the old version used: never while this migration's sync triggers still
    mirror into it (they would fail, and a dropped UNIQUE index on to.key would break the 1:1 mapping)."""
    pattern = re.compile(r'^zdt_m%d_s\d+_' % int(migration.id))
    live = sorted(t['name'] for t in model.triggers if pattern.match(t['name'] or ''))
    if live:
        raise DatabaseError('contract of migration %d refused: its sync triggers still exist (%s); drop them first '
                            '(mysql_trigger_sync state=absent), once the old version is stopped' % (int(migration.id), ', '.join(live)))


def _ours(step_status, index, changelog_done):
    """Did this migration's expand make step ``index``?  (A table that existed before is never dropped.)"""
    status = step_status.get(('expand', index))
    if status is None:
        return changelog_done   # applied by an earlier tool that recorded only the changelog
    return status in ('running', 'ran')


def _plan_rollback(model, migration, step_status, changelog_done, steps, skipped):
    dropped_tables = set()
    for i in range(len(migration.expand) - 1, -1, -1):
        op = migration.expand[i]
        a = op.args
        if step_status.get(('rollback', i)) == 'ran':
            skipped.append(Skip('rollback', i, op, 'already undone'))
            continue
        if not _ours(step_status, i, changelog_done):
            skipped.append(Skip('rollback', i, op, 'not made by this migration'))
            continue
        if op.kind == 'create_table':
            if model.table(a['table']) is None:
                skipped.append(Skip('rollback', i, op, 'table %s is absent' % a['table']))
                continue
            steps.append(_drop_table_step(model, op, 'rollback', i, a['table'], 'drop_table', rollback=True))
            dropped_tables.add(a['table'])
        elif op.kind == 'add_column':
            t = model.table(a['table'])
            step = _drop_columns_step(model, op, 'rollback', i, t, [a['column'].name], 'drop_column', rollback=True) if t else None
            if step is None:
                skipped.append(Skip('rollback', i, op, 'column %s.%s is absent' % (a['table'], a['column'].name)))
                continue
            steps.append(step)
        elif op.kind == 'create_index':
            t = model.table(a['table'])
            if t is None or a['name'].lower() not in t.indexes:
                skipped.append(Skip('rollback', i, op, 'index %s on %s is absent' % (a['name'], a['table'])))
                continue
            if _created_later(migration, i, a['table']):
                # the table itself is dropped further down the rollback: no need to touch its index
                skipped.append(Skip('rollback', i, op, 'table %s is dropped by this rollback' % a['table']))
                continue
            _drop_index_checks(op, t, a['name'])
            steps.append(Step('rollback', i, op, drop_index_sql(a['table'], t.indexes[a['name'].lower()]['name']), None,
                              (a['table'],), 'drop_index'))
            del t.indexes[a['name'].lower()]
        elif op.kind == 'sql':
            steps.append(Step('rollback', i, op, a['down'], None, (), 'run_sql_down'))
    return dropped_tables


def _created_later(migration, index, table):
    """True when ``table`` is created by an expand op before ``index`` (so rollback drops it after undoing ``index``)."""
    return any(op.kind == 'create_table' and op.args['table'] == table for op in migration.expand[:index])


# --------------------------------------------------------------------------------------------
# State, drift, changelog
# --------------------------------------------------------------------------------------------

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
    """Lower-case column name -> mysql_connection.columns entry of the changelog table ({} when it does not exist)."""
    return dict((name.lower(), col) for name, col in mysql_connection.columns(conn, database, table).items())


def changelog_has(conn, table, migration_id):
    try:
        rows = query(conn, 'SELECT 1 FROM %s WHERE change_number = %%s' % quote_identifier(table, 'changelog_table'), (migration_id,))
    except Exception as exc:  # pylint: disable=broad-except
        if _missing_table(exc):
            return False
        if error_code(exc) == 1054:
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
    query(conn, 'INSERT INTO %s (%s) VALUES (%s)' % (quote_identifier(table, 'changelog_table'), _cols(names), ', '.join(values)), args)


def _set_phase(conn, migration, phase, status, steps_done=None):
    query(conn, 'INSERT INTO %s (migration_id, phase, checksum, status, steps_done, started_at) VALUES (%%s, %%s, %%s, %%s, %%s, NOW(6)) '
                'ON DUPLICATE KEY UPDATE status = VALUES(status), steps_done = VALUES(steps_done), '
                'finished_at = IF(VALUES(status) = \'done\', NOW(6), NULL)' % quote_identifier(STATE_TABLE),
          (migration.id, phase, migration.checksum, status, steps_done or 0))


def _set_step(conn, migration_id, phase, index, op, status, statement):
    query(conn, 'INSERT INTO %s (migration_id, phase, step_index, op, status, statement, updated_at) VALUES (%%s, %%s, %%s, %%s, %%s, %%s, NOW(6)) '
                'ON DUPLICATE KEY UPDATE status = VALUES(status), statement = VALUES(statement), updated_at = NOW(6)'
          % quote_identifier(STEP_TABLE), (migration_id, phase, index, op, status, statement))


# --------------------------------------------------------------------------------------------
# Running DDL
# --------------------------------------------------------------------------------------------

def backoff_delay(attempt, base=0.1, cap=5.0, rand=random.random):
    """Exponential backoff with jitter: about base * 2**attempt, at most ``cap`` seconds."""
    delay = min(cap, base * (2 ** attempt))
    return delay * (0.5 + rand() / 2)


def describe_blockers(conn, database, tables):
    """Best-effort text naming who holds metadata locks / transactions on ``tables``; None when nothing is visible."""
    found = []
    try:
        if tables:
            marks = ', '.join(['%s'] * len(tables))
            rows = query(conn, 'SELECT m.THREAD_ID, m.LOCK_MODE, m.TABLE_NAME, p.USER, p.HOST, p.TIME, LEFT(p.INFO, 120) '
                               'FROM information_schema.METADATA_LOCK_INFO m LEFT JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID '
                               'WHERE m.TABLE_SCHEMA = %%s AND m.TABLE_NAME IN (%s) AND m.THREAD_ID <> CONNECTION_ID()' % marks,
                         [database] + list(tables))
            for tid, mode, table, user, host, secs, info in rows:
                running = ', running: %s' % info if info else ''
                found.append('connection %s (%s@%s) holds %s on %s for %ss%s' % (tid, user, host, mode, table, secs, running))
    except Exception:  # pylint: disable=broad-except
        pass   # the metadata_lock_info plugin is not installed
    if not found:
        try:
            rows = query(conn, 'SELECT p.ID, p.USER, p.HOST, p.COMMAND, TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), LEFT(p.INFO, 120) '
                               'FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id '
                               'WHERE p.ID <> CONNECTION_ID() ORDER BY t.trx_started LIMIT 3')
            for pid, user, host, command, age, info in rows:
                found.append('connection %s (%s@%s, %s) has a transaction open for %ss%s' % (
                    pid, user, host, command, age, ', running: %s' % info if info else ''))
        except Exception:  # pylint: disable=broad-except
            pass   # no PROCESS privilege
    return '; '.join(found) if found else None


def run_ddl(conn, step, lock_wait_timeout=1, ddl_retries=10, sleep=time.sleep, database=None, log=None):
    """Run one step's statement with a short lock_wait_timeout, retrying lock waits with backoff.

    Returns the statement that ran (the INPLACE fallback when the server refused INSTANT).
    """
    query(conn, 'SET SESSION lock_wait_timeout = %s', (int(lock_wait_timeout),))
    statement = step.statement
    attempt = 0
    while True:
        try:
            query(conn, statement)
            return statement
        except Exception as exc:  # pylint: disable=broad-except
            code = error_code(exc)
            if code is None:
                raise
            message = error_message(exc)
            if code in ONLINE_REFUSED:
                if step.fallback and statement != step.fallback:
                    statement = step.fallback
                    continue
                raise DatabaseError('%s: the server cannot make this change online (%s): %s; refusing to copy the table'
                                    % (step.describe(), statement, message))
            if code in RETRYABLE:
                if attempt >= ddl_retries:
                    blocker = describe_blockers(conn, database, step.tables) if database else None
                    raise DatabaseError('%s: gave up after %d attempts waiting %ss each for a metadata lock (%s); %s'
                                        % (step.describe(), attempt + 1, lock_wait_timeout, message,
                                           'blocked by ' + blocker if blocker else 'the blocking session is not visible to this user '
                                           '(needs the PROCESS privilege)'))
                delay = backoff_delay(attempt)
                if log:
                    log('%s: lock wait timeout, retry %d in %.2fs' % (step.describe(), attempt + 1, delay))
                sleep(delay)
                attempt += 1
                continue
            raise DatabaseError('%s failed: error %s: %s (statement: %s)' % (step.describe(), code, message, statement))


def _ddl_quiet(conn, sql, lock_wait_timeout):
    query(conn, 'SET SESSION lock_wait_timeout = %s', (max(int(lock_wait_timeout), 5),))
    query(conn, sql)


def lock_name(database):
    name = 'zdt_schema.%s' % database
    if len(name) > 64:
        name = 'zdt_schema.' + hashlib.sha1(database.encode('utf-8')).hexdigest()
    return name


def show_create_tables(conn, tables):
    out = []
    for t in sorted(set(tables)):
        text = show_create_table(conn, t)
        out.append('-- table %s\n%s\n' % (t, text if text is not None else '-- (absent)'))
    return ''.join(out)


Result = namedtuple('Result', 'changed statements skipped tables before after')


def apply_phase(conn, migration, phase, database, changelog_table='changelog', lock_wait_timeout=1, ddl_retries=10,
                check_mode=False, want_diff=False, sleep=time.sleep, lock_timeout=30, log=None):
    """Plan and (unless ``check_mode``) run ``phase`` of ``migration``; return a Result."""
    if phase not in PHASES:
        raise SpecError('phase', 'must be one of %s' % ', '.join(PHASES))
    quote_identifier(changelog_table, 'changelog_table')
    locked = False
    if not check_mode:
        got = query(conn, 'SELECT GET_LOCK(%s, %s)', (lock_name(database), lock_timeout))[0][0]
        if got != 1:
            holder = query(conn, 'SELECT IS_USED_LOCK(%s)', (lock_name(database),))[0][0]
            raise DatabaseError('another schema change is running on database %s (connection %s holds lock %s)'
                                % (database, holder, lock_name(database)))
        locked = True
    try:
        return _apply_locked(conn, migration, phase, database, changelog_table, lock_wait_timeout, ddl_retries,
                             check_mode, want_diff, sleep, log)
    finally:
        if locked:
            try:
                query(conn, 'SELECT RELEASE_LOCK(%s)', (lock_name(database),))
            except Exception:  # pylint: disable=broad-except
                pass   # the connection may be gone; the server frees the lock with it


def _apply_locked(conn, migration, phase, database, changelog_table, lock_wait_timeout, ddl_retries, check_mode, want_diff, sleep, log):
    phases, step_status = read_state(conn, migration.id)
    check_drift(migration, phases)
    check_changelog_shape(conn, database, changelog_table)
    in_changelog = changelog_has(conn, changelog_table, migration.id)
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
    planned = plan_steps(model, migration, phase, step_status, changelog_done=in_changelog)
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

    _ddl_quiet(conn, STATE_DDL, lock_wait_timeout)
    _ddl_quiet(conn, STEP_DDL, lock_wait_timeout)
    _set_phase(conn, migration, phase, 'running')
    if phase == 'expand':
        for skip in planned.skipped:
            if (skip.phase, skip.index) not in step_status:
                _set_step(conn, migration.id, phase, skip.index, skip.op.kind, 'present', None)
            elif step_status[(skip.phase, skip.index)] == 'running':
                _set_step(conn, migration.id, phase, skip.index, skip.op.kind, 'ran', None)   # ran, killed before recording
    ran = []
    for n, step in enumerate(planned.steps):
        _set_step(conn, migration.id, phase, step.index, step.op.kind, 'running', step.statement)
        try:
            statement = run_ddl(conn, step, lock_wait_timeout, ddl_retries, sleep=sleep, database=database, log=log)
        except DatabaseError:
            # the server refused the statement (DDL is atomic on MariaDB 10.6+ / MySQL 8.0): nothing of it applied
            _set_step(conn, migration.id, phase, step.index, step.op.kind, 'failed', step.statement)
            raise
        ran.append(statement)
        _set_step(conn, migration.id, phase, step.index, step.op.kind, 'ran', statement)
        _set_phase(conn, migration, phase, 'running', n + 1)
    if phase == 'expand':
        if not changelog_has(conn, changelog_table, migration.id):
            _ddl_quiet(conn, changelog_ddl(changelog_table), lock_wait_timeout)
            check_changelog_shape(conn, database, changelog_table)
            insert_changelog(conn, database, changelog_table, migration)
        _set_phase(conn, migration, phase, 'done', len(ran))
    elif phase == 'contract':
        _set_phase(conn, migration, phase, 'done', len(ran))
    else:
        try:
            query(conn, 'DELETE FROM %s WHERE change_number = %%s' % quote_identifier(changelog_table, 'changelog_table'), (migration.id,))
        except Exception as exc:  # pylint: disable=broad-except
            if not _missing_table(exc):
                raise
        query(conn, 'DELETE FROM %s WHERE migration_id = %%s' % quote_identifier(STEP_TABLE), (migration.id,))
        query(conn, 'DELETE FROM %s WHERE migration_id = %%s' % quote_identifier(STATE_TABLE), (migration.id,))
    after = show_create_tables(conn, affected) if want_diff else ''
    return Result(True, ran, planned.skipped, affected, before, after)


def plan(conn, migration, phase, database=None, changelog_table='changelog'):
    """The steps ``phase`` would run now (read-only): a list of Step, each with its exact ``statement``."""
    if database is None:
        database = query(conn, 'SELECT DATABASE()')[0][0]
    phases, step_status = read_state(conn, migration.id)
    check_drift(migration, phases)
    in_changelog = changelog_has(conn, changelog_table, migration.id)
    model = load_model(conn, database, tables_of(migration, phase))
    return plan_steps(model, migration, phase, step_status, changelog_done=in_changelog).steps
