# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check a migration's sync entries against the live schema and find the live sync triggers (read-only, no Ansible import).

:func:`inspect_sync` validates everything the triggers and the backfill rely on *before* anything changes (tables,
columns, keys, unique indexes, that every synced value fits the other shape) and returns the entry's
:class:`sync_plan.SyncPlan`.  :func:`classify` and :func:`owned_live_triggers` tell our live triggers from anybody
else's: by name pattern *and* the label their body starts with.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.zdt.bluegreen.plugins.module_utils import mysql_inspect
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError, SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import key_names
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_types import capacity_problem
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_plan import live_default
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_expressions import check_expression
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_plan import TRIGGER_LABEL, MappedPair, SyncPlan, Trigger, default_sql


def _columns(conn, db, table):
    """Lower-case column name -> definition (mysql_inspect.columns): names compare case-insensitively."""
    return dict((name.lower(), col) for name, col in mysql_inspect.columns(conn, db, table).items())


def _check_pairs(spec, fcols, tcols):
    """Every synced value fits the other shape, and NULL where the sync writes it (SpecError naming the field)."""
    field = 'sync[%d]' % spec.index
    for j, (f, t) in enumerate(zip(spec.from_columns, spec.to_columns)):
        fc, tc = fcols[f.lower()], tcols[t.lower()]
        problem = capacity_problem(fc, tc)
        if problem:
            raise SpecError('%s.to.columns[%d]' % (field, j), 'column %s.%s: %s (%s.%s)' % (spec.to_table, t, problem, spec.from_table, f))
        if spec.direction == 'both':
            problem = capacity_problem(tc, fc)
            if problem:
                raise SpecError('%s.from.columns[%d]' % (field, j), 'column %s.%s: %s (%s.%s), and direction is both'
                                % (spec.from_table, f, problem, spec.to_table, t))
        if not tc['nullable'] and fc['nullable']:
            raise SpecError('%s.to.columns[%d]' % (field, j), 'column %s.%s is NOT NULL but %s.%s may be NULL'
                            % (spec.to_table, t, spec.from_table, f))
        if spec.kind == 'cross' and spec.direction == 'both' and not fc['nullable']:
            raise SpecError('%s.from.columns[%d]' % (field, j),
                            'column %s.%s is NOT NULL: deleting the new row sets it to NULL (make it nullable or use direction: forward)'
                            % (spec.from_table, f))
        if spec.kind == 'same' and spec.direction == 'both' and not fc['nullable'] and tc['nullable']:
            raise SpecError('%s.from.columns[%d]' % (field, j), 'column %s.%s is NOT NULL but %s.%s may be NULL'
                            % (spec.from_table, f, spec.to_table, t))


def _check_mapped_pairs(spec, fcols, tcols):
    """What an omitted expression implies (the value copied unchanged) must fit: up's copy the new column, down's copy
    the old column's NULLs.  Expressions themselves are the user's (the server checks they resolve)."""
    for m in spec.mappings:
        fc, tc = fcols[m.from_column.lower()], tcols[m.to_column.lower()]
        if m.up is None:
            problem = capacity_problem(fc, tc)
            if problem:
                raise SpecError(m.field + '.up', 'without up the value is copied, but column %s.%s: %s (%s.%s); give an up '
                                                 'expression that fits' % (spec.to_table, m.to_column, problem, spec.from_table,
                                                                           m.from_column))
            if not tc['nullable'] and fc['nullable']:
                names = (spec.to_table, m.to_column, spec.from_table, m.from_column, m.from_column)
                raise SpecError(m.field + '.up', "column %s.%s is NOT NULL but %s.%s may be NULL: give an up that never yields NULL, "
                                                 "e.g. COALESCE(%s, '')" % names)
        if m.writes_back and m.down is None and not fc['nullable'] and tc['nullable']:
            raise SpecError(m.field + '.down', 'column %s.%s is NOT NULL but %s.%s may be NULL: give a down that never yields NULL'
                            % (spec.from_table, m.from_column, spec.to_table, m.to_column))
        if spec.kind == 'cross' and m.writes_back and m.down is None:
            # as for plain pairs: what the new version writes must fit the old column (an alter_column's INT -> BIGINT copy
            # back is allowed: the design leaves the range to the new version until the contract)
            problem = capacity_problem(tc, fc)
            if problem:
                raise SpecError(m.field + '.down', 'without down the value is copied back, but column %s.%s: %s (%s.%s); give a '
                                                   'down expression that fits' % (spec.from_table, m.from_column, problem,
                                                                                  spec.to_table, m.to_column))
        if spec.kind == 'cross' and m.writes_back and not fc['nullable']:
            raise SpecError(m.field + '.from', 'column %s.%s is NOT NULL: deleting the new row sets it to NULL (make it nullable or '
                                               'use direction: forward)' % (spec.from_table, m.from_column))


def _default_sql(coldef):
    try:
        default = live_default(coldef)
    except ValueError:
        return None
    return default_sql(coldef, default)


def _mapped_pairs(conn, spec, fcols, tcols):
    """The MappedPairs of a mapped entry, each expression resolved by the server first (SpecError naming it).

    ``up`` reads the old table's row (same table: without the new columns), ``down`` the new table's row."""
    names = [c['name'] for c in sorted(fcols.values(), key=lambda c: c['position'])]
    new_names = [c['name'] for c in sorted(tcols.values(), key=lambda c: c['position'])]
    if spec.kind == 'same':
        new_lower = set(c.lower() for c in spec.to_columns)
        old_names = [c for c in names if c.lower() not in new_lower]
    else:
        old_names = names
    result = []
    for m in spec.mappings:
        if m.up is not None:
            check_expression(conn, spec.from_table, m.up, names, {}, m.field + '.up', available=old_names)
        if m.down is not None:
            check_expression(conn, spec.to_table, m.down, new_names, {}, m.field + '.down')
        fc, tc = fcols[m.from_column.lower()], tcols[m.to_column.lower()]
        result.append(MappedPair(m, fc['type'], tc['type'], old_names, new_names, _default_sql(fc), _default_sql(tc)))
    return result


def _indexes(conn, db, table):
    """Index name -> {columns (lower case), unique}."""
    return dict((name, dict(columns=[c.lower() for c in idx['columns']], unique=idx['unique']))
                for name, idx in mysql_inspect.indexes(conn, db, table).items())


def _table_field(spec, side):
    return '%s.table' % spec.field if spec.origin else '%s.%s.table' % (spec.field, side)


def inspect_sync(conn, db, migration_id, spec):
    """Validate one SyncSpec against the live schema and return its :class:`SyncPlan`.

    Raises SpecError (naming the field) for anything the triggers or the backfill could not
    handle exactly, before any change is made.
    """
    field = spec.field
    for side, table in (('from', spec.from_table), ('to', spec.to_table)):
        if not mysql_inspect.table_exists(conn, db, table, base_only=True):
            raise SpecError(_table_field(spec, side), 'table %s does not exist in database %s' % (table, db))
    fcols = _columns(conn, db, spec.from_table)
    tcols = fcols if spec.kind == 'same' else _columns(conn, db, spec.to_table)
    findex = _indexes(conn, db, spec.from_table)
    pk = findex.get('PRIMARY', {}).get('columns', [])
    if spec.origin:
        # an alter_column's entry is keyed by the table's primary key
        if not pk:
            raise SpecError(_table_field(spec, 'from'), 'table %s needs a primary key for the sync' % spec.from_table)
        key = tuple(fcols[c]['name'] for c in pk)
        key = key if len(key) > 1 else key[0]
        spec = spec._replace(from_key=key, to_key=key)
    for side, cols, table, names in (('from', fcols, spec.from_table, spec.from_columns), ('to', tcols, spec.to_table, spec.to_columns)):
        for j, c in enumerate(names):
            if c.lower() not in cols:
                raise SpecError(spec.column_field(side, j), 'column %s.%s does not exist' % (table, c))
            if cols[c.lower()]['generated']:
                raise SpecError(spec.column_field(side, j), 'column %s.%s is generated and cannot be synced' % (table, c))
    if spec.mappings is not None:
        _check_mapped_pairs(spec, fcols, tcols)
    else:
        _check_pairs(spec, fcols, tcols)
    from_keys, to_keys = key_names(spec.from_key), key_names(spec.to_key)
    for k in from_keys:
        if k.lower() not in fcols:
            raise SpecError(spec.key_field('from'), 'column %s.%s does not exist' % (spec.from_table, k))
    if pk != [k.lower() for k in from_keys]:
        raise SpecError(spec.key_field('from'), '(%s) must be the primary key of %s, in its order (primary key is %s)'
                        % (', '.join(from_keys), spec.from_table, '(%s)' % ', '.join(pk) if pk else 'missing'))
    key_type = tuple(fcols[k.lower()]['type'] for k in from_keys)
    key_type = key_type if len(key_type) > 1 else key_type[0]
    from_types = [fcols[c.lower()]['type'] for c in spec.from_columns]
    to_types = [tcols[c.lower()]['type'] for c in spec.to_columns]
    if spec.kind == 'same':
        mapped = _mapped_pairs(conn, spec, fcols, tcols) if spec.mappings is not None else None
        return SyncPlan(migration_id, spec, from_types, to_types, key_type, mapped=mapped)

    for fk_name, tk_name in zip(from_keys, to_keys):
        if tk_name.lower() not in tcols:
            raise SpecError(spec.key_field('to'), 'column %s.%s does not exist' % (spec.to_table, tk_name))
        problem = capacity_problem(fcols[fk_name.lower()], tcols[tk_name.lower()])
        if problem:
            raise SpecError(field + '.to.key', 'column %s.%s: %s (%s.%s)' % (spec.to_table, tk_name, problem, spec.from_table, fk_name))
    to_lower = [k.lower() for k in to_keys]
    to_text = ', '.join(to_keys)
    tindex = _indexes(conn, db, spec.to_table)
    key_index = None
    for name, entry in sorted(tindex.items()):
        if entry['unique'] and entry['columns'] == to_lower:
            key_index = name
            break
    if key_index is None:
        raise SpecError(field + '.to.key', 'the sync needs a UNIQUE index on %s(%s) while it exists (1:1 rows); add one, e.g. '
                                           'create_index {table: %s, name: %s_%s_uniq, columns: [%s], unique: true}'
                        % (spec.to_table, to_text, spec.to_table, spec.to_table, to_keys[0], to_text))
    # Upserts address the row by to.key only: any other UNIQUE index could make
    # ON DUPLICATE KEY UPDATE hit a different row, so refuse it.
    tpk = tindex.get('PRIMARY', {}).get('columns', [])
    for name, entry in sorted(tindex.items()):
        if not entry['unique'] or name == key_index:
            continue
        if name == 'PRIMARY' and (tpk == to_lower or (len(tpk) == 1 and 'auto_increment' in tcols[tpk[0]]['extra'])):
            continue
        raise SpecError(field + '.to.table', 'unique index %s on %s(%s) is not allowed while the sync exists: rows are matched '
                                             'by %s only (the primary key must be %s or an AUTO_INCREMENT column)'
                        % (name, spec.to_table, ', '.join(entry['columns']), to_text, to_text))
    synced = set(to_lower + [c.lower() for c in spec.to_columns])
    autoinc = None
    for lname, col in sorted(tcols.items()):
        if 'auto_increment' in col['extra']:
            autoinc = col['name']
        if lname in synced or col['nullable'] or col['generated'] or 'auto_increment' in col['extra']:
            continue
        if col['default'] is None:
            raise SpecError(field + '.to.table', 'column %s.%s is NOT NULL without a default and not synced: the triggers '
                                                 'could not create rows' % (spec.to_table, col['name']))
    mapped = _mapped_pairs(conn, spec, fcols, tcols) if spec.mappings is not None else None
    return SyncPlan(migration_id, spec, from_types, to_types, key_type, target_autoinc=autoinc, to_key_index=key_index,
                    cascade_delete=_has_cascade_fk(conn, db, spec), mapped=mapped)


def _has_cascade_fk(conn, db, spec):
    """True when a foreign key to.table(to.key) -> from.table(from.key) deletes the new row ON DELETE CASCADE."""
    for fk in mysql_inspect.foreign_keys(conn, db, spec.to_table).values():
        # the referenced table must be this schema's from.table: a same-named table elsewhere cascades nothing here
        if (fk['ref_schema'] == db and fk['ref_table'] == spec.from_table and fk['on_delete'] == 'CASCADE'
                and [c.lower() for c in fk['columns']] == [k.lower() for k in key_names(spec.to_key)]
                and [c.lower() for c in fk['ref_columns']] == [k.lower() for k in key_names(spec.from_key)]):
            return True
    return False


def unchecked_plan(migration, spec):
    """The entry's plan without the live schema: trigger names and shape are right, column types are placeholders.

    For reporting only (names of triggers that would exist, progress): never for creating triggers or copying.
    A foreign key ON DELETE CASCADE that the migration's expand creates counts as live (it drops a trigger)."""
    mapped = [MappedPair(m) for m in spec.mappings] if spec.mappings is not None else None
    key_type = tuple(['int'] * len(key_names(spec.from_key))) if isinstance(spec.from_key, tuple) else 'int'
    return SyncPlan(migration.id, spec, ['int'] * len(spec.from_columns), ['int'] * len(spec.to_columns), key_type,
                    cascade_delete=_expand_creates_cascade_fk(migration, spec), mapped=mapped)


def _expand_creates_cascade_fk(migration, spec):
    """True when the expand creates to.table with the foreign key _has_cascade_fk looks for in the live schema."""
    for op in migration.expand:
        if op.kind != 'create_table' or op.args['table'].lower() != spec.to_table.lower():
            continue
        for fk in op.args['foreign_keys']:
            if (fk.on_delete == 'CASCADE' and fk.ref_table.lower() == spec.from_table.lower()
                    and [c.lower() for c in fk.columns] == [k.lower() for k in key_names(spec.to_key)]
                    and [c.lower() for c in fk.ref_columns] == [k.lower() for k in key_names(spec.from_key)]):
                return True
    return False


def made_by_expand(migration, spec):
    """True when the migration's own expand creates a table or column the entry uses (check mode: not there yet)."""
    tables = set(op.args['table'].lower() for op in migration.expand if op.kind == 'create_table')
    columns = set((op.args['table'].lower(), op.args['column'].name.lower()) for op in migration.expand if op.kind == 'add_column')
    columns.update((op.args['table'].lower(), op.args['rename_to'].lower()) for op in migration.expand
                   if op.kind == 'alter_column' and op.args['rename_to'])
    used = [(spec.from_table, c) for c in spec.from_columns] + [(spec.to_table, c) for c in spec.to_columns]
    return (spec.from_table.lower() in tables or spec.to_table.lower() in tables
            or any((t.lower(), c.lower()) in columns for t, c in used))


def inspect_all(conn, db, migration):
    return [inspect_sync(conn, db, migration.id, spec) for spec in migration.sync]


# -------------------------------------------------------------------- live triggers

def _normalize(body):
    return re.sub(r'\s+', ' ', (body or '').strip())


def existing_triggers(conn, db):
    """Map trigger name -> {table, timing, event, body} for every trigger of ``db``."""
    return dict((t['name'], dict(table=t['table'], timing=t['timing'], event=t['event'], body=t['statement']))
                for t in mysql_inspect.triggers(conn, db))


def is_ours(live, trigger):
    """True when the live trigger has our name, table, timing, event and label."""
    return (live['table'] == trigger.table and live['timing'] == trigger.timing and live['event'] == trigger.event
            and _normalize(live['body']).startswith(TRIGGER_LABEL + ': BEGIN'))


def classify(conn, db, plans):
    """Return (present, missing) lists of Trigger; raise when a name is taken by a foreign or changed trigger."""
    live = existing_triggers(conn, db)
    present, missing = [], []
    for plan in plans:
        for trig in plan.triggers():
            cur = live.get(trig.name)
            if cur is None:
                missing.append(trig)
                continue
            if not is_ours(cur, trig):
                raise DatabaseError('a trigger named %s already exists on %s and was not created by zdt.bluegreen for this sync; '
                                    'refusing to touch it' % (trig.name, cur['table']))
            if _normalize(cur['body']) != _normalize(trig.body):
                raise DatabaseError('trigger %s exists with a different definition than %s of migration %d now needs '
                                    '(the migration or the schema changed); run state=absent first'
                                    % (trig.name, plan.field, plan.migration_id))
            present.append(trig)
    return present, missing


def owned_live_triggers(conn, db, migration_id):
    """Our triggers of a migration that exist now (for state=absent), found by name pattern and label."""
    live = existing_triggers(conn, db)
    pattern = re.compile(r'^zdt_m%d_s\d+_(fwd|bwd|same)_(ins|upd|del)$' % int(migration_id))
    result = []
    for name, cur in sorted(live.items()):
        if pattern.match(name) and _normalize(cur['body']).startswith(TRIGGER_LABEL + ': BEGIN'):
            result.append(Trigger(name, cur['table'], cur['timing'], cur['event'], cur['body']))
    order = {'ins': 0, 'upd': 1, 'del': 2}
    result.sort(key=lambda t: (t.name.split('_')[3] == 'fwd', order[t.name.rsplit('_', 1)[1]]))
    return result
