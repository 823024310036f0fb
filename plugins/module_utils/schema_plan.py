# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan a migration's expand / contract / rollback phase against a schema model (pure, no I/O, no Ansible import).

:func:`plan_steps` walks the ops against a :class:`schema_model.SchemaModel` of the live schema, skips what is
already there, checks every referenced table, column, index and trigger and raises before anything runs: a plan
either runs whole or not at all.  Each :class:`Step` carries its exact statement (and the online fallback of an
INSTANT ALTER); :mod:`schema_apply` runs them.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
from collections import OrderedDict, namedtuple

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError, SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import (
    CURRENT_TIMESTAMP, NO_DEFAULT, Column, validate_default)
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_types import parse_type
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_model import TableModel, triggers_referencing
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_sql import (
    INPLACE, INSTANT, add_column_sql, add_foreign_key_sql, create_index_sql, create_table_sql, drop_columns_sql,
    drop_foreign_key_sql, drop_index_sql, drop_table_sql, modify_column_sql)

PHASES = ('expand', 'contract', 'rollback')


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


_NUMBER_RE = re.compile(r'^-?\d+(\.\d+)?\Z')
_CURRENT_TIMESTAMP_RE = re.compile(r'^current_timestamp(\(\d*\))?\Z', re.I)


def live_default(coldef):
    """The live column's default as a migration file would write it: NO_DEFAULT, None (NULL), CURRENT_TIMESTAMP, a number or a
    string; raises ValueError for an expression default (information_schema shows MariaDB's SQL text of the default)."""
    text = coldef.get('default')
    if text is None:
        return NO_DEFAULT
    if text.upper() == 'NULL':
        return None
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if _CURRENT_TIMESTAMP_RE.match(text):
        return CURRENT_TIMESTAMP
    if _NUMBER_RE.match(text):
        return int(text) if '.' not in text else text
    raise ValueError('expression default %s' % text)


def new_column(op, coldef, name):
    """The Column an alter_column gives its new (or changed) column: what the op states, else the live column's."""
    a = op.args
    field = op.field + '.alter_column'
    if coldef.get('generated') or 'auto_increment' in (coldef.get('extra') or ''):
        raise _fail(op, 'column %s.%s is generated or AUTO_INCREMENT: it cannot be changed online' % (a['table'], a['column']),
                    'alter_column.column')
    ctype = a['type']
    if ctype is None:
        try:
            ctype = parse_type(coldef['column_type'], field + '.type')
        except SpecError:
            raise SpecError(field + '.type', 'the live type %s of %s.%s is outside the migration grammar: state the type'
                            % (coldef['column_type'], a['table'], a['column']))
    nullable = coldef['nullable'] if a['nullable'] is None else a['nullable']
    default = a['default']
    if default is NO_DEFAULT:
        try:
            default = live_default(coldef)
        except ValueError as exc:
            raise SpecError(field + '.default', 'the live column %s.%s has an %s: state the default' % (a['table'], a['column'], exc))
        if default is None and not nullable:
            default = NO_DEFAULT
        try:
            default = validate_default(default, ctype, nullable, field + '.default') if default is not NO_DEFAULT else NO_DEFAULT
        except SpecError as exc:
            raise SpecError(field + '.default', 'the live default does not suit the new column (%s): state the default' % exc.message)
    elif a['type'] is None:
        default = validate_default(default, ctype, nullable, field + '.default')
    charset = collation = None
    if ctype.takes_charset:
        same_family = coldef.get('charset') is not None
        charset = a['charset'] or (coldef.get('charset') if same_family else None)
        collation = a['collation'] or (coldef.get('collation') if same_family and not a['charset'] else None)
    return Column(name, ctype, nullable, default, False, charset, collation)


def _type_widening_problem(coldef, ctype):
    """Why changing the live column's type to ``ctype`` in place is not a widening (None when it is)."""
    live = parse_type(coldef['column_type'])
    if live.name != ctype.name:
        return 'the type changes from %s to %s' % (live.sql(), ctype.sql())
    if ctype.name in ('CHAR', 'VARCHAR'):
        if ctype.length < live.length:
            return '%s is shorter than %s' % (ctype.sql(), live.sql())
        if ctype.name == 'CHAR' and ctype.length != live.length:
            return 'a CHAR length change rewrites the table'
    elif ctype.name == 'ENUM':
        if tuple(ctype.values[:len(live.values)]) != tuple(live.values):
            return 'ENUM values may only be appended'
    elif ctype.is_integer:
        if ctype.unsigned != live.unsigned:
            return 'the type changes from %s to %s' % (live.sql(), ctype.sql())
    elif ctype.sql() != live.sql():
        return 'the type changes from %s to %s' % (live.sql(), ctype.sql())
    return None


def _widening_problem(coldef, target):
    """Why changing the live column to ``target`` in place is not a widening (None when it is)."""
    if coldef['nullable'] and not target.nullable:
        return 'NULL -> NOT NULL narrows the column'
    problem = _type_widening_problem(coldef, target.type)
    if problem:
        return problem
    if (target.charset or coldef.get('charset')) != coldef.get('charset') or (target.collation or coldef.get('collation')) != coldef.get('collation'):
        return 'the character set or collation changes'
    if 'on update' in (coldef.get('extra') or ''):
        return 'the column has ON UPDATE, which an in-place change would drop'
    return None


def _same_definition(coldef, target):
    live = parse_type(coldef['column_type'])
    try:
        default = live_default(coldef)
    except ValueError:
        return False
    if default is None and not coldef['nullable']:
        default = NO_DEFAULT
    want = target.default
    return (_type_widening_problem(coldef, target.type) is None and live.sql().split('(')[0] == target.type.sql().split('(')[0]
            and (live.length == target.type.length or live.is_integer) and coldef['nullable'] == target.nullable
            and (default is NO_DEFAULT) == (want is NO_DEFAULT) and str(default) == str(want))


def _plan_alter_column(model, op, phase, index, steps, skipped):
    a = op.args
    t = _need_table(model, op, a['table'])
    if not t.has_column(a['column']):
        raise _fail(op, 'column %s.%s does not exist' % (a['table'], a['column']), 'alter_column.column')
    coldef = t.column_defs.get(a['column'].lower())
    if coldef is None:
        raise _fail(op, 'table %s is created by this migration: define the column there' % a['table'], 'alter_column.table')
    primary = t.indexes.get('primary')
    if primary and a['column'].lower() in [c.lower() for c in primary['columns']]:
        raise _fail(op, 'column %s.%s is in the primary key, which the sync triggers and the backfill key rows by'
                    % (a['table'], a['column']), 'alter_column.column')
    if a['rename_to'] is not None:
        if t.has_column(a['rename_to']):
            skipped.append(Skip(phase, index, op, 'column %s.%s exists' % (a['table'], a['rename_to'])))
            return
        col = new_column(op, coldef, a['rename_to'])
        algorithm = INSTANT if model.instant_add_column() else INPLACE
        fallback = add_column_sql(a['table'], col, INPLACE) if algorithm == INSTANT else None
        steps.append(Step(phase, index, op, add_column_sql(a['table'], col, algorithm), fallback, (a['table'],), 'add_column'))
        t.columns[col.name.lower()] = col.name
        return
    problem = _type_widening_problem(coldef, a['type']) if a['type'] is not None else None
    if problem:
        raise _fail(op, 'an in-place change must widen what the column accepts (%s); give rename_to to add a new column '
                        'the triggers keep equal' % problem)
    col = new_column(op, coldef, coldef['name'])
    if _same_definition(coldef, col):
        skipped.append(Skip(phase, index, op, 'column %s.%s already has this definition' % (a['table'], a['column'])))
        return
    problem = _widening_problem(coldef, col)
    if problem:
        raise _fail(op, 'an in-place change must widen what the column accepts (%s); give rename_to to add a new column '
                        'the triggers keep equal' % problem)
    if coldef.get('comment'):
        raise _fail(op, 'column %s.%s has a comment an in-place change would drop; give rename_to' % (a['table'], a['column']))
    statement = modify_column_sql(a['table'], col, INSTANT)
    steps.append(Step(phase, index, op, statement, modify_column_sql(a['table'], col, INPLACE), (a['table'],), 'modify_column'))


def _plan_add_foreign_key(model, op, phase, index, steps, skipped):
    a = op.args
    fk = a['foreign_key']
    sub = 'add_foreign_key'
    t = _need_table(model, op, a['table'])
    _need_columns(op, t, fk.columns, 'columns')
    existing = t.foreign_keys.get(fk.name.lower())
    if existing is not None:
        same = ([c.lower() for c in existing['columns']] == [c.lower() for c in fk.columns] and existing['ref_table'] == fk.ref_table
                and [c.lower() for c in existing['ref_columns']] == [c.lower() for c in fk.ref_columns])
        if not same:
            raise _fail(op, 'foreign key %s on %s exists with a different definition' % (fk.name, a['table']), sub + '.name')
        skipped.append(Skip(phase, index, op, 'foreign key %s on %s exists' % (fk.name, a['table'])))
        return
    ref = t if fk.ref_table == a['table'] else model.table(fk.ref_table)
    if ref is None:
        raise _fail(op, 'referenced table %s does not exist' % fk.ref_table, sub + '.references.table')
    for j, c in enumerate(fk.ref_columns):
        if not ref.has_column(c):
            raise _fail(op, 'referenced column %s.%s does not exist' % (fk.ref_table, c), '%s.references.columns[%d]' % (sub, j))
    if ref.index_with_prefix(fk.ref_columns) is None:
        raise _fail(op, 'referenced columns %s.(%s) are not the leading columns of an index' % (fk.ref_table, ', '.join(fk.ref_columns)),
                    sub + '.references.columns')
    if 'SET NULL' in (fk.on_delete, fk.on_update):
        for j, c in enumerate(fk.columns):
            coldef = t.column_defs.get(c.lower())
            if coldef is not None and not coldef['nullable']:
                raise _fail(op, 'SET NULL needs nullable columns (%s.%s is NOT NULL)' % (a['table'], c), '%s.columns[%d]' % (sub, j))
    steps.append(Step(phase, index, op, add_foreign_key_sql(a['table'], fk), None, (a['table'], fk.ref_table), 'add_foreign_key'))
    t.foreign_keys[fk.name.lower()] = dict(name=fk.name, columns=list(fk.columns), ref_table=fk.ref_table, ref_columns=list(fk.ref_columns))
    if t.index_with_prefix(fk.columns) is None:
        t.indexes[fk.name.lower()] = dict(name=fk.name, columns=list(fk.columns), unique=False)   # InnoDB adds it
    if fk.ref_table != a['table']:
        model.inbound_fks.setdefault(fk.ref_table, []).append((a['table'], fk.name, list(fk.ref_columns)))


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
            elif op.kind == 'alter_column':
                _plan_alter_column(model, op, phase, i, steps, skipped)
            elif op.kind == 'add_foreign_key':
                _plan_add_foreign_key(model, op, phase, i, steps, skipped)
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


def is_sync_trigger_of(migration, name):
    """True for a trigger name of this migration's sync entries (zdt_m<id>_s<n>_...)."""
    return bool(re.match(r'^zdt_m%d_s\d+_' % int(migration.id), name or ''))


def _refuse_live_sync(model, migration):
    """Contract removes what only the old version used: never while this migration's sync triggers still
    mirror into it (they would fail, and a dropped UNIQUE index on to.key would break the 1:1 mapping)."""
    live = sorted(t['name'] for t in model.triggers if is_sync_trigger_of(migration, t['name']))
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
        elif op.kind in ('add_column', 'alter_column'):
            name = a['column'].name if op.kind == 'add_column' else a['rename_to']
            if name is None:
                # an in-place change only widened the column: the old version works with it, nothing to undo
                skipped.append(Skip('rollback', i, op, 'an in-place widening of %s.%s is kept' % (a['table'], a['column'])))
                continue
            t = model.table(a['table'])
            step = _drop_columns_step(model, op, 'rollback', i, t, [name], 'drop_column', rollback=True) if t else None
            if step is None:
                skipped.append(Skip('rollback', i, op, 'column %s.%s is absent' % (a['table'], name)))
                continue
            steps.append(step)
        elif op.kind == 'add_foreign_key':
            t = model.table(a['table'])
            name = a['foreign_key'].name
            if t is None or name.lower() not in t.foreign_keys:
                skipped.append(Skip('rollback', i, op, 'foreign key %s on %s is absent' % (name, a['table'])))
                continue
            # the index InnoDB added for the key stays: it serves the old version's queries too
            steps.append(Step('rollback', i, op, drop_foreign_key_sql(a['table'], t.foreign_keys[name.lower()]['name']),
                              drop_foreign_key_sql(a['table'], t.foreign_keys[name.lower()]['name'], INPLACE), (a['table'],),
                              'drop_foreign_key'))
            del t.foreign_keys[name.lower()]
            model.inbound_fks[a['foreign_key'].ref_table] = [e for e in model.inbound_fks.get(a['foreign_key'].ref_table, [])
                                                             if e[1] != name]
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
