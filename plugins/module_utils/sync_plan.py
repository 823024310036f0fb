# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of one sync entry and its trigger SQL, for ``mysql_trigger_sync`` (no Ansible import).

One :class:`SyncPlan` per ``sync`` entry of a migration (built from the live schema by
:func:`sync_inspect.inspect_sync`): what the triggers, the backfill and the verifier need to know
about the entry, and the trigger DDL.  Pure: no I/O.

Cross-table entries (``users`` -> ``addresses``) get AFTER triggers:

* forward (on the ``from`` table): INSERT/UPDATE upsert the new row (``INSERT … ON DUPLICATE KEY
  UPDATE`` on ``to.key``'s UNIQUE index; the new table's own AUTO_INCREMENT key is never given, so
  it can never collide with ids the new version allocates), or delete it when every mapped column
  is NULL; DELETE deletes it.
* backward (on the ``to`` table, ``direction: both``): INSERT/UPDATE copy the values into the old
  row, DELETE sets the old columns to NULL.

Recursion (forward fires backward, which would modify the table that fired it: error 1442) is cut
by a per-entry session-variable guard.  The guard cannot be left behind by a failing statement
(measured: a guard that a failing statement left set made every later write on that pooled
connection skip the sync silently): its value is the *statement's* start time ``NOW(6)``, which is
constant inside one top-level statement and its triggers and differs for the next statement, and
an ``EXIT HANDLER … RESIGNAL`` clears it on any error before re-raising the error unchanged.  A
stale value (for example after ``KILL QUERY``, which handlers do not see) therefore never matches
a later statement.  The backfill session sets a second variable so its own copy does not fire the
backward triggers.

Same-table entries (a column moved/renamed inside one table) get BEFORE INSERT/UPDATE triggers
that set ``NEW.col`` (a trigger may not modify its own table): on insert the non-NULL side wins
(both non-NULL and different: ``from`` wins); on update the side the statement changed wins, and
if both changed ``from`` wins.  ``direction: forward`` always derives ``to`` from ``from``.

Mapped same-table entries (an ``alter_column``: one old column, one new column or several for a
split, ``up`` and ``down`` expressions) follow the same rules with the expressions in between: an
update that changed the old column sets every new column to its ``up``, else one that changed a new
column sets the old column to ``down``; an insert sets the old column through ``down`` only when the
statement gave the new side (a new column differs from its default) and left the old column at its
default, and otherwise the new columns through ``up`` (both given: ``from`` wins).  A side "at its
default" is compared with the live column default (a NOT NULL column without one: the value the
server fills in, '' or 0).  The triggers never write another table, so they never loop, and they
skip the backfill's own UPDATEs (its session variable), which only fill rows no write has touched.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import CURRENT_TIMESTAMP, NO_DEFAULT
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import quote_identifier as q
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import sql_literal
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_types import changed_kind, same_value, type_kind
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_expressions import row_expression
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_keys import key_equals

TRIGGER_LABEL = 'zdt_sync'


def guard_var(migration_id, index):
    """Session variable that marks 'a zdt trigger body of this entry runs in this statement'."""
    return '@zdt_sync_m%d_s%d' % (int(migration_id), int(index))


def copy_var(migration_id, index):
    """Session variable set only by the backfill session: backward triggers skip the copy's writes."""
    return '@zdt_copy_m%d_s%d' % (int(migration_id), int(index))


def trigger_name(migration_id, index, direction, event):
    """``zdt_m2_s0_fwd_ins``: deterministic, short (< 64 chars), never derived from user input."""
    return 'zdt_m%d_s%d_%s_%s' % (int(migration_id), int(index), direction, event)


class Trigger(object):
    """One trigger we own: name, table, timing, event and the full body text."""

    def __init__(self, name, table, timing, event, body):
        self.name = name
        self.table = table
        self.timing = timing
        self.event = event
        self.body = body

    def create_sql(self):
        return 'CREATE TRIGGER %s %s %s ON %s FOR EACH ROW %s' % (
            q(self.name, 'trigger'), self.timing, self.event, q(self.table, 'table'), self.body)

    def drop_sql(self):
        return 'DROP TRIGGER IF EXISTS %s' % q(self.name, 'trigger')

    def __repr__(self):
        return 'Trigger(%s %s %s ON %s)' % (self.name, self.timing, self.event, self.table)


class MappedPair(object):
    """One pair of a mapped entry with what its SQL needs from the live schema.

    ``up_columns`` / ``down_columns``: the columns each expression may name (the trigger builds its NEW row of those it
    does name); ``from_type`` / ``to_type``: DATA_TYPEs; ``from_default`` / ``to_default``: the column default as SQL
    (``NULL``, a literal) or None when no single value stands for "not given" (an expression default)."""

    def __init__(self, mapping, from_type='int', to_type='int', up_columns=(), down_columns=(), from_default=None, to_default=None):
        self.from_column = mapping.from_column
        self.to_column = mapping.to_column
        self.up = mapping.up
        self.down = mapping.down
        self.writes_back = mapping.writes_back
        self.from_type = from_type.lower()
        self.to_type = to_type.lower()
        self.from_kind = type_kind(self.from_type)
        self.to_kind = type_kind(self.to_type)
        self.up_columns = tuple(up_columns)
        self.down_columns = tuple(down_columns)
        self.from_default = from_default
        self.to_default = to_default

    def up_sql(self, prefix):
        """The new value from the old row: ``prefix`` 'NEW' in a trigger, None inside a statement on the table."""
        if self.up is None:
            return (prefix + '.' if prefix else '') + q(self.from_column, 'column')
        return row_expression(self.up, self.up_columns, prefix)

    def down_sql(self, prefix):
        if self.down is None:
            return (prefix + '.' if prefix else '') + q(self.to_column, 'column')
        return row_expression(self.down, self.down_columns, prefix)

    def at_default(self, prefix, side):
        """SQL: the ``side`` (from | to) column still holds its default (false when no value stands for that)."""
        column, default, kind = ((self.from_column, self.from_default, self.from_kind) if side == 'from'
                                 else (self.to_column, self.to_default, self.to_kind))
        expr = '%s.%s' % (prefix, q(column, 'column'))
        if default is None:
            return 'FALSE'
        if default == 'NULL':
            return '%s IS NULL' % expr
        return same_value(expr, default, kind)


def default_sql(coldef, default):
    """The SQL of a live column's default for :meth:`MappedPair.at_default` (None: no single value stands for "not given").

    ``default`` is what :func:`schema_plan.live_default` read; a NOT NULL column without a default is filled with ''
    or 0 by the server when a statement does not name it."""
    if default is NO_DEFAULT:
        if coldef['nullable']:
            return 'NULL'
        kind = type_kind(coldef['type'])
        if kind == 'string' and coldef['type'] not in ('enum', 'set', 'json'):
            return "''"
        if coldef['type'] in ('tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint', 'decimal'):
            return '0'
        return None
    if default is None:
        return 'NULL'
    if default == CURRENT_TIMESTAMP:
        return None
    try:
        return sql_literal(default)
    except ValueError:
        return None


class SyncPlan(object):
    """Everything the triggers, the backfill and the verifier need for one ``sync`` entry."""

    def __init__(self, migration_id, spec, from_types, to_types, key_type, target_autoinc=None,
                 to_key_index=None, cascade_delete=False, mapped=None):
        self.migration_id = int(migration_id)
        self.spec = spec
        self.index = spec.index
        self.kind = spec.kind
        self.direction = spec.direction
        self.from_table = spec.from_table
        self.to_table = spec.to_table
        self.from_key = spec.from_key      # a name, or a tuple of names (a composite primary key)
        self.to_key = spec.to_key
        self.from_keys = tuple(spec.from_key) if isinstance(spec.from_key, (list, tuple)) else (spec.from_key,)
        self.to_keys = tuple(spec.to_key) if isinstance(spec.to_key, (list, tuple)) else (spec.to_key,)
        self.from_columns = tuple(spec.from_columns)
        self.to_columns = tuple(spec.to_columns)
        self.from_types = tuple(t.lower() for t in from_types)
        self.to_types = tuple(t.lower() for t in to_types)
        # a DATA_TYPE, or a tuple of them for a composite key
        self.key_type = tuple(t.lower() for t in key_type) if isinstance(key_type, (list, tuple)) else key_type.lower()
        self.target_autoinc = target_autoinc
        self.to_key_index = to_key_index
        self.cascade_delete = bool(cascade_delete)
        self.guard = guard_var(self.migration_id, self.index)
        self.copy_guard = copy_var(self.migration_id, self.index)
        # per pair of a mapped entry (spec.mappings): a MappedPair; None for plain pairs
        self.mapped = list(mapped) if mapped is not None else None

    @property
    def field(self):
        return self.spec.field

    def key_sql(self, side='from', prefix=None):
        """The key of one side as SQL: a quoted column (``prefix.`col```), or a tuple of them for a composite key."""
        names = self.from_keys if side == 'from' else self.to_keys
        parts = tuple('%s%s' % (prefix + '.' if prefix else '', q(n, '%s.key' % side)) for n in names)
        return parts if len(parts) > 1 else parts[0]

    def key_types(self):
        return self.key_type if isinstance(self.key_type, tuple) else (self.key_type,)

    def _key_changed(self, side):
        """SQL (in a trigger): the statement changed the row's key."""
        names = self.from_keys if side == 'from' else self.to_keys
        same = ' AND '.join('OLD.%s <=> NEW.%s' % (q(n, '%s.key' % side), q(n, '%s.key' % side)) for n in names)
        return 'NOT (%s)' % same

    def pairs(self):
        return list(zip(self.from_columns, self.to_columns, self.from_types, self.to_types))

    # ---------------------------------------------------------------- triggers

    def triggers(self):
        """The triggers of this entry, in creation order (drop in reverse)."""
        if self.kind == 'same' and self.mapped is not None:
            return self._mapped_same_table_triggers()
        if self.kind == 'same':
            return self._same_table_triggers()
        result = self._forward_triggers()
        if self.direction == 'both':
            result.extend(self._backward_triggers())
        return result

    def _guarded(self, statements):
        """Wrap cross-table trigger statements in the failure-proof recursion guard."""
        # The guard test comes first and the handler lives in an inner block: a body that is skipped (the
        # backward trigger fired by a forward trigger's write, or the backfill's own writes) runs one IF
        # and nothing else (measured: a cheaper skip path is most of the cost of two-way triggers).
        g = self.guard
        body = [
            '%s: BEGIN' % TRIGGER_LABEL,
            '  IF %s IS NULL AND NOT (%s <=> NOW(6) + 0) THEN' % (self.copy_guard, g),
            '    BEGIN',
            '      DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN SET %s = NULL; RESIGNAL; END;' % g,
            '      SET %s = NOW(6) + 0;' % g,
        ]
        body.extend('      ' + s for s in statements)
        body.extend(['      SET %s = NULL;' % g, '    END;', '  END IF;', 'END'])
        return '\n'.join(body)

    def _all_null(self, prefix, columns):
        return ' AND '.join('%s.%s IS NULL' % (prefix, q(c, 'column')) for c in columns)

    def source_values(self, prefix):
        """The new columns' values from the old row: ``prefix`` 'NEW' in a trigger, an alias or None in a statement on
        the old table (mapped pairs: their ``up``, else the old column)."""
        if self.mapped is not None:
            return [p.up_sql(prefix) for p in self.mapped]
        return ['%s%s' % (prefix + '.' if prefix else '', q(c, 'from.columns')) for c in self.from_columns]

    def source_types(self):
        """DATA_TYPE of each value of :meth:`source_values` (an expression's: its new column's)."""
        if self.mapped is not None:
            return [p.to_type if p.up is not None else p.from_type for p in self.mapped]
        return list(self.from_types)

    def old_columns(self):
        """The distinct old columns of the entry (a split reads one column several times)."""
        seen = []
        for c in self.from_columns:
            if c.lower() not in [x.lower() for x in seen]:
                seen.append(c)
        return seen

    def _upsert_target(self, prefix):
        cols = [q(k, 'to.key') for k in self.to_keys] + [q(c, 'to.columns') for c in self.to_columns]
        values = self.source_values(prefix)
        vals = ['%s.%s' % (prefix, q(k, 'from.key')) for k in self.from_keys] + values
        updates = ', '.join('%s = %s' % (q(t, 'to.columns'), v) for t, v in zip(self.to_columns, values))
        return 'INSERT INTO %s (%s) VALUES (%s) ON DUPLICATE KEY UPDATE %s;' % (
            q(self.to_table, 'to.table'), ', '.join(cols), ', '.join(vals), updates)

    def _delete_target(self, prefix):
        """Delete the new row of the old row ``prefix`` (OLD or NEW)."""
        return 'DELETE FROM %s WHERE %s;' % (q(self.to_table, 'to.table'), key_equals(self.key_sql('to'), self.key_sql('from', prefix)))

    def _forward_triggers(self):
        def name(event):
            return trigger_name(self.migration_id, self.index, 'fwd', event)

        old_columns = self.old_columns()
        ins = [
            'IF NOT (%s) THEN' % self._all_null('NEW', old_columns),
            '  ' + self._upsert_target('NEW'),
            'END IF;',
        ]
        changed = [self._key_changed('from')]
        types = dict((c.lower(), t) for c, t in zip(self.from_columns, self.from_types))
        for col in old_columns:
            c = q(col, 'from.columns')
            changed.append('NOT (%s)' % same_value('OLD.' + c, 'NEW.' + c, changed_kind(types[col.lower()])))
        upd = [
            'IF %s THEN' % self._key_changed('from'),
            '  ' + self._delete_target('OLD'),
            'END IF;',
            'IF %s THEN' % ' OR '.join(changed),
            '  IF %s THEN' % self._all_null('NEW', old_columns),
            '    ' + self._delete_target('NEW'),
            '  ELSE',
            # the upsert alone, never an UPDATE first: under REPEATABLE READ an UPDATE that finds no
            # new row (a user not copied yet) gap-locks the key index, and two such writers' inserts
            # into that gap then deadlock each other (measured: 4-13 deadlocks in 8 s of 8 writers;
            # none with the upsert alone). The price: on an AUTO_INCREMENT target each upsert that
            # finds the row still uses up one id.
            '    ' + self._upsert_target('NEW'),
            '  END IF;',
            'END IF;',
        ]
        dele = [self._delete_target('OLD')]
        t = self.from_table
        result = [
            Trigger(name('del'), t, 'AFTER', 'DELETE', self._guarded(dele)),
            Trigger(name('upd'), t, 'AFTER', 'UPDATE', self._guarded(upd)),
            Trigger(name('ins'), t, 'AFTER', 'INSERT', self._guarded(ins)),
        ]
        if self.cascade_delete:
            # a foreign key to.key -> from.key ON DELETE CASCADE already deletes the new row
            result = result[1:]
        return result

    def _set_source(self, prefix, key_prefix):
        """Set the old row of the new row ``key_prefix`` (OLD or NEW) from the new row ``prefix`` (None: to NULL)."""
        if self.mapped is not None:
            back = [p for p in self.mapped if p.writes_back]
            sets = ', '.join('%s = %s' % (q(p.from_column, 'from.columns'), 'NULL' if prefix is None else p.down_sql(prefix))
                             for p in back)
        elif prefix is None:
            sets = ', '.join('%s = NULL' % q(c, 'from.columns') for c in self.from_columns)
        else:
            sets = ', '.join('%s = %s.%s' % (q(f, 'from.columns'), prefix, q(t, 'to.columns'))
                             for f, t in zip(self.from_columns, self.to_columns))
        return 'UPDATE %s SET %s WHERE %s;' % (q(self.from_table, 'from.table'), sets,
                                               key_equals(self.key_sql('from'), self.key_sql('to', key_prefix)))

    def _backward_triggers(self):
        def name(event):
            return trigger_name(self.migration_id, self.index, 'bwd', event)

        ins = [self._set_source('NEW', 'NEW')]
        changed = [self._key_changed('to')]
        for _f, col, _ft, ttype in self.pairs():
            c = q(col, 'to.columns')
            changed.append('NOT (%s)' % same_value('OLD.' + c, 'NEW.' + c, changed_kind(ttype)))
        upd = [
            'IF %s THEN' % self._key_changed('to'),
            '  ' + self._set_source(None, 'OLD'),
            'END IF;',
            'IF %s THEN' % ' OR '.join(changed),
            '  ' + self._set_source('NEW', 'NEW'),
            'END IF;',
        ]
        dele = [self._set_source(None, 'OLD')]
        t = self.to_table
        return [
            Trigger(name('del'), t, 'AFTER', 'DELETE', self._guarded(dele)),
            Trigger(name('upd'), t, 'AFTER', 'UPDATE', self._guarded(upd)),
            Trigger(name('ins'), t, 'AFTER', 'INSERT', self._guarded(ins)),
        ]

    def _same_table_triggers(self):
        ins, upd = [], []
        for f, t, ftype, ttype in self.pairs():
            a, b = 'NEW.' + q(f, 'from.columns'), 'NEW.' + q(t, 'to.columns')
            oa, ob = 'OLD.' + q(f, 'from.columns'), 'OLD.' + q(t, 'to.columns')
            if self.direction == 'forward':
                ins.append('SET %s = %s;' % (b, a))
                upd.append('SET %s = %s;' % (b, a))
                continue
            ins.extend([
                'IF %s IS NULL THEN' % b,
                '  SET %s = %s;' % (b, a),
                'ELSEIF %s IS NULL THEN' % a,
                '  SET %s = %s;' % (a, b),
                'ELSE',
                '  SET %s = %s;' % (b, a),
                'END IF;',
            ])
            upd.extend([
                'IF NOT (%s) THEN' % same_value(a, oa, changed_kind(ftype)),
                '  SET %s = %s;' % (b, a),
                'ELSEIF NOT (%s) THEN' % same_value(b, ob, changed_kind(ttype)),
                '  SET %s = %s;' % (a, b),
                'END IF;',
            ])

        def body(statements):
            return '\n'.join(['%s: BEGIN' % TRIGGER_LABEL] + ['  ' + s for s in statements] + ['END'])

        t = self.from_table
        return [
            Trigger(trigger_name(self.migration_id, self.index, 'same', 'upd'), t, 'BEFORE', 'UPDATE', body(upd)),
            Trigger(trigger_name(self.migration_id, self.index, 'same', 'ins'), t, 'BEFORE', 'INSERT', body(ins)),
        ]

    def _mapped_same_table_triggers(self):
        pairs = self.mapped
        old = 'NEW.' + q(pairs[0].from_column, 'column')
        back = [p for p in pairs if p.writes_back][0]
        set_new = ['SET NEW.%s = %s;' % (q(p.to_column, 'column'), p.up_sql('NEW')) for p in pairs]
        set_old = 'SET %s = %s;' % (old, back.down_sql('NEW'))
        new_at_default = ' AND '.join('(%s)' % p.at_default('NEW', 'to') for p in pairs)
        old_at_default = pairs[0].at_default('NEW', 'from')
        ins = ['IF NOT (%s) AND (%s) THEN' % (new_at_default, old_at_default), '  ' + set_old, 'ELSE']
        ins.extend('  ' + x for x in set_new)
        ins.append('END IF;')
        old_changed = 'NOT (%s)' % same_value(old, 'OLD.' + q(pairs[0].from_column, 'column'), changed_kind(pairs[0].from_type))
        new_changed = ' OR '.join('NOT (%s)' % same_value('NEW.' + q(p.to_column, 'column'), 'OLD.' + q(p.to_column, 'column'),
                                                          changed_kind(p.to_type)) for p in pairs)
        upd = ['IF %s THEN' % old_changed]
        upd.extend('  ' + x for x in set_new)
        upd.extend(['ELSEIF %s THEN' % new_changed, '  ' + set_old, 'END IF;'])

        def body(statements):
            # the backfill's UPDATE fills the new columns of rows no write has touched: nothing to mirror back
            return '\n'.join(['%s: BEGIN' % TRIGGER_LABEL, '  IF %s IS NULL THEN' % self.copy_guard]
                             + ['    ' + x for x in statements] + ['  END IF;', 'END'])

        t = self.from_table
        return [
            Trigger(trigger_name(self.migration_id, self.index, 'same', 'upd'), t, 'BEFORE', 'UPDATE', body(upd)),
            Trigger(trigger_name(self.migration_id, self.index, 'same', 'ins'), t, 'BEFORE', 'INSERT', body(ins)),
        ]

    def mapped_verified(self):
        """SQL over the table's own row: true when a mapped same-table row is in sync, i.e. every new column equals its
        ``up`` of the old row, or the old column equals ``down`` of the new row (``up(down(x))`` need not be ``x``)."""
        pairs = self.mapped
        ups = ' AND '.join('(%s)' % same_value(q(p.to_column, 'column'), p.up_sql(None), p.to_kind) for p in pairs)
        back = [p for p in pairs if p.writes_back][0]
        down = same_value(q(back.from_column, 'column'), back.down_sql(None), back.from_kind)
        return '((%s) OR (%s))' % (ups, down)

    def mapped_fill(self):
        """The backfill's SET list of a mapped same-table entry: every new column through ``up``."""
        return ', '.join('%s = %s' % (q(p.to_column, 'column'), p.up_sql(None)) for p in self.mapped)

    # ---------------------------------------------------------------- SQL helpers for backfill/verify

    def any_not_null(self, alias=None, columns=None):
        prefix = (alias + '.') if alias else ''
        cols = columns if columns is not None else self.old_columns()
        return '(%s)' % ' OR '.join('%s%s IS NOT NULL' % (prefix, q(c, 'column')) for c in cols)
