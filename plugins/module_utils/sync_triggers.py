# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sync planning and trigger generation for ``mysql_trigger_sync`` (no Ansible import).

One :class:`SyncPlan` per ``sync`` entry of a migration, built from the live schema by
:func:`inspect_sync`; it validates everything the triggers and the backfill rely on *before*
anything changes, and generates the trigger DDL.

Cross-table entries (``users`` -> ``addresses``) get AFTER triggers:

* forward (on the ``from`` table): INSERT/UPDATE upsert the new row (``INSERT … ON DUPLICATE KEY
  UPDATE`` on ``to.key``'s UNIQUE index; the new table's own AUTO_INCREMENT key is never given, so
  it can never collide with ids the new version allocates), or delete it when every mapped column
  is NULL; DELETE deletes it.
* backward (on the ``to`` table, ``direction: both``): INSERT/UPDATE copy the values into the old
  row, DELETE sets the old columns to NULL.

Recursion (forward fires backward, which would modify the table that fired it: error 1442) is cut
by a per-entry session-variable guard.  The guard cannot be left behind by a failing statement
(the hazard in MEASUREMENTS.md): its value is the *statement's* start time ``NOW(6)``, which is
constant inside one top-level statement and its triggers and differs for the next statement, and
an ``EXIT HANDLER … RESIGNAL`` clears it on any error before re-raising the error unchanged.  A
stale value (for example after ``KILL QUERY``, which handlers do not see) therefore never matches
a later statement.  The backfill session sets a second variable so its own copy does not fire the
backward triggers.

Same-table entries (a column moved/renamed inside one table) get BEFORE INSERT/UPDATE triggers
that set ``NEW.col`` (a trigger may not modify its own table): on insert the non-NULL side wins
(both non-NULL and different: ``from`` wins); on update the side the statement changed wins, and
if both changed ``from`` wins.  ``direction: forward`` always derives ``to`` from ``from``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import time

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError, SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils import mysql_connection
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import query
from ansible_collections.zdt.bluegreen.plugins.module_utils.sql_identifiers import quote_identifier

TRIGGER_LABEL = 'zdt_sync'
STRING_TYPES = frozenset(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'enum', 'set', 'json'])
BINARY_TYPES = frozenset(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob'])
NUMERIC_TYPES = frozenset(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint', 'decimal', 'numeric', 'year'])
TEMPORAL_TYPES = frozenset(['date', 'time', 'datetime', 'timestamp'])
# Types whose value survives a round trip through a SQL literal built by the server (see backfill.py).
LITERAL_SAFE_TYPES = STRING_TYPES | BINARY_TYPES | NUMERIC_TYPES | TEMPORAL_TYPES

ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213


def q(name, field='identifier'):
    return quote_identifier(name, field)


def guard_var(migration_id, index):
    """Session variable that marks 'a zdt trigger body of this entry runs in this statement'."""
    return '@zdt_sync_m%d_s%d' % (int(migration_id), int(index))


def copy_var(migration_id, index):
    """Session variable set only by the backfill session: backward triggers skip the copy's writes."""
    return '@zdt_copy_m%d_s%d' % (int(migration_id), int(index))


def trigger_name(migration_id, index, direction, event):
    """``zdt_m2_s0_fwd_ins``: deterministic, short (< 64 chars), never derived from user input."""
    return 'zdt_m%d_s%d_%s_%s' % (int(migration_id), int(index), direction, event)


def same_value(x, y, kind):
    """SQL true when ``x`` and ``y`` hold the same value, NULL-safe and exact.

    Strings compare as utf8mb4 bytes: a collation-equal change ('a' -> 'A', trailing spaces)
    is a change.  Other types use ``<=>``.
    """
    if kind == 'string':
        return 'CAST(CONVERT(%s USING utf8mb4) AS BINARY) <=> CAST(CONVERT(%s USING utf8mb4) AS BINARY)' % (x, y)
    if kind == 'binary':
        return 'CAST(%s AS BINARY) <=> CAST(%s AS BINARY)' % (x, y)
    return '%s <=> %s' % (x, y)


def changed_kind(data_type):
    """Comparison kind for OLD.col vs NEW.col of the *same* column: both sides have the column's character
    set, so comparing their bytes is exact and the CONVERT of :func:`same_value`'s 'string' kind is not needed."""
    return 'binary' if type_kind(data_type) in ('string', 'binary') else 'other'


def type_kind(data_type):
    data_type = (data_type or '').lower()
    if data_type in STRING_TYPES:
        return 'string'
    if data_type in BINARY_TYPES:
        return 'binary'
    return 'other'


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


class SyncPlan(object):
    """Everything the triggers, the backfill and the verifier need for one ``sync`` entry."""

    def __init__(self, migration_id, spec, from_types, to_types, key_type, target_autoinc=None,
                 to_key_index=None, cascade_delete=False):
        self.migration_id = int(migration_id)
        self.spec = spec
        self.index = spec.index
        self.kind = spec.kind
        self.direction = spec.direction
        self.from_table = spec.from_table
        self.to_table = spec.to_table
        self.from_key = spec.from_key
        self.to_key = spec.to_key
        self.from_columns = tuple(spec.from_columns)
        self.to_columns = tuple(spec.to_columns)
        self.from_types = tuple(t.lower() for t in from_types)
        self.to_types = tuple(t.lower() for t in to_types)
        self.key_type = key_type.lower()
        self.target_autoinc = target_autoinc
        self.to_key_index = to_key_index
        self.cascade_delete = bool(cascade_delete)
        self.guard = guard_var(self.migration_id, self.index)
        self.copy_guard = copy_var(self.migration_id, self.index)

    @property
    def field(self):
        return 'sync[%d]' % self.index

    def pairs(self):
        return list(zip(self.from_columns, self.to_columns, self.from_types, self.to_types))

    # ---------------------------------------------------------------- triggers

    def triggers(self):
        """The triggers of this entry, in creation order (drop in reverse)."""
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

    def _upsert_target(self, prefix):
        cols = [q(self.to_key, 'to.key')] + [q(c, 'to.columns') for c in self.to_columns]
        vals = ['%s.%s' % (prefix, q(self.from_key, 'from.key'))] + ['%s.%s' % (prefix, q(c, 'from.columns')) for c in self.from_columns]
        updates = ', '.join('%s = %s.%s' % (q(t, 'to.columns'), prefix, q(f, 'from.columns'))
                            for f, t in zip(self.from_columns, self.to_columns))
        return 'INSERT INTO %s (%s) VALUES (%s) ON DUPLICATE KEY UPDATE %s;' % (
            q(self.to_table, 'to.table'), ', '.join(cols), ', '.join(vals), updates)

    def _delete_target(self, key_expr):
        return 'DELETE FROM %s WHERE %s = %s;' % (q(self.to_table, 'to.table'), q(self.to_key, 'to.key'), key_expr)

    def _forward_triggers(self):
        fk = q(self.from_key, 'from.key')

        def name(event):
            return trigger_name(self.migration_id, self.index, 'fwd', event)

        ins = [
            'IF NOT (%s) THEN' % self._all_null('NEW', self.from_columns),
            '  ' + self._upsert_target('NEW'),
            'END IF;',
        ]
        changed = ['NOT (OLD.%s <=> NEW.%s)' % (fk, fk)]
        for col, _to, ftype, _tt in self.pairs():
            c = q(col, 'from.columns')
            changed.append('NOT (%s)' % same_value('OLD.' + c, 'NEW.' + c, changed_kind(ftype)))
        upd = [
            'IF NOT (OLD.%s <=> NEW.%s) THEN' % (fk, fk),
            '  ' + self._delete_target('OLD.' + fk),
            'END IF;',
            'IF %s THEN' % ' OR '.join(changed),
            '  IF %s THEN' % self._all_null('NEW', self.from_columns),
            '    ' + self._delete_target('NEW.' + fk),
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
        dele = [self._delete_target('OLD.' + fk)]
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

    def _set_source(self, prefix, key_expr):
        if prefix is None:
            sets = ', '.join('%s = NULL' % q(c, 'from.columns') for c in self.from_columns)
        else:
            sets = ', '.join('%s = %s.%s' % (q(f, 'from.columns'), prefix, q(t, 'to.columns'))
                             for f, t in zip(self.from_columns, self.to_columns))
        return 'UPDATE %s SET %s WHERE %s = %s;' % (q(self.from_table, 'from.table'), sets, q(self.from_key, 'from.key'), key_expr)

    def _backward_triggers(self):
        tk = q(self.to_key, 'to.key')

        def name(event):
            return trigger_name(self.migration_id, self.index, 'bwd', event)

        ins = [self._set_source('NEW', 'NEW.' + tk)]
        changed = ['NOT (OLD.%s <=> NEW.%s)' % (tk, tk)]
        for _f, col, _ft, ttype in self.pairs():
            c = q(col, 'to.columns')
            changed.append('NOT (%s)' % same_value('OLD.' + c, 'NEW.' + c, changed_kind(ttype)))
        upd = [
            'IF NOT (OLD.%s <=> NEW.%s) THEN' % (tk, tk),
            '  ' + self._set_source(None, 'OLD.' + tk),
            'END IF;',
            'IF %s THEN' % ' OR '.join(changed),
            '  ' + self._set_source('NEW', 'NEW.' + tk),
            'END IF;',
        ]
        dele = [self._set_source(None, 'OLD.' + tk)]
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

    # ---------------------------------------------------------------- SQL helpers for backfill/verify

    def any_not_null(self, alias=None, columns=None):
        prefix = (alias + '.') if alias else ''
        cols = columns if columns is not None else self.from_columns
        return '(%s)' % ' OR '.join('%s%s IS NOT NULL' % (prefix, q(c, 'column')) for c in cols)


# -------------------------------------------------------------------- inspection / validation

def _columns(conn, db, table):
    rows = query(conn, 'SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, GENERATION_EXPRESSION, COLUMN_TYPE, '
                       'CHARACTER_MAXIMUM_LENGTH, CHARACTER_SET_NAME, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION '
                       'FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION',
                 (db, table))
    result = {}
    for name, dtype, nullable, default, extra, gen, ctype, length, charset, precision, scale, fsp in rows:
        result[name.lower()] = dict(name=name, type=dtype.lower(), nullable=(nullable == 'YES'), default=default,
                                    extra=(extra or '').lower(), generated=bool(gen), column_type=(ctype or '').lower(),
                                    length=length, charset=charset, precision=precision, scale=scale, fsp=fsp)
    return result


# Integer types by the values they hold: (signed range, unsigned range) as (low, high).
_INT_BITS = {'tinyint': 8, 'smallint': 16, 'mediumint': 24, 'int': 32, 'integer': 32, 'bigint': 64}


def _int_range(col):
    bits = _INT_BITS[col['type']]
    if 'unsigned' in col.get('column_type', ''):
        return 0, 2 ** bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def capacity_problem(src, dst):
    """Why column ``dst`` cannot hold every value of column ``src`` (None when it can).

    The two-version window needs every write of either version to fit the other shape: the sync checks this
    up front, so a narrower column fails here, not as the application's failed (or, without strict mode,
    silently truncated) writes.  Columns are dicts as read by ``_columns``.
    """
    st, dt = src['type'], dst['type']
    if st in _INT_BITS and dt in _INT_BITS:
        (slo, shi), (dlo, dhi) = _int_range(src), _int_range(dst)
        return None if dlo <= slo and shi <= dhi else '%s cannot hold every %s value' % (dst['column_type'], src['column_type'])
    if st in ('decimal', 'numeric') and dt in ('decimal', 'numeric'):
        sp, ss, dp, ds = (int(src['precision'] or 0), int(src['scale'] or 0), int(dst['precision'] or 0), int(dst['scale'] or 0))
        if ds >= ss and dp - ds >= sp - ss and ('unsigned' not in dst['column_type'] or 'unsigned' in src['column_type']):
            return None
        return '%s cannot hold every %s value' % (dst['column_type'], src['column_type'])
    if st in ('float', 'double') and dt in ('float', 'double'):
        return None if (st, dt) != ('double', 'float') else 'float cannot hold every double value'
    if st in ('enum', 'set') or dt in ('enum', 'set'):
        return None if src['column_type'] == dst['column_type'] else '%s differs from %s' % (dst['column_type'], src['column_type'])
    if type_kind(st) == type_kind(dt) and type_kind(st) in ('string', 'binary'):
        if st != 'json' and int(dst['length'] or 0) < int(src['length'] or 0):
            return '%s is shorter than %s' % (dst['column_type'], src['column_type'])
        if type_kind(st) == 'string' and src.get('charset') != dst.get('charset') and dst.get('charset') != 'utf8mb4':
            return 'character set %s cannot hold every %s character' % (dst.get('charset'), src.get('charset'))
        return None
    if st == dt and st in TEMPORAL_TYPES:
        return None if int(dst['fsp'] or 0) >= int(src['fsp'] or 0) else '%s has fewer fractional digits than %s' % (
            dst['column_type'], src['column_type'])
    if st == dt == 'year' or (st == dt and st in ('bit', 'boolean')):
        return None if dst['column_type'] == src['column_type'] else '%s differs from %s' % (dst['column_type'], src['column_type'])
    return 'type %s is not %s (the values would be converted)' % (dst['column_type'], src['column_type'])


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


def _indexes(conn, db, table):
    """Index name -> {columns (lower case), unique}."""
    return dict((name, dict(columns=[c.lower() for c in idx['columns']], unique=idx['unique']))
                for name, idx in mysql_connection.indexes(conn, db, table).items())


def inspect_sync(conn, db, migration_id, spec):
    """Validate one SyncSpec against the live schema and return its :class:`SyncPlan`.

    Raises SpecError (naming the field) for anything the triggers or the backfill could not
    handle exactly, before any change is made.
    """
    field = 'sync[%d]' % spec.index
    for side, table in (('from', spec.from_table), ('to', spec.to_table)):
        if not mysql_connection.table_exists(conn, db, table, base_only=True):
            raise SpecError('%s.%s.table' % (field, side), 'table %s does not exist in database %s' % (table, db))
    fcols = _columns(conn, db, spec.from_table)
    tcols = fcols if spec.kind == 'same' else _columns(conn, db, spec.to_table)
    for side, cols, table, names in (('from', fcols, spec.from_table, spec.from_columns), ('to', tcols, spec.to_table, spec.to_columns)):
        for j, c in enumerate(names):
            if c.lower() not in cols:
                raise SpecError('%s.%s.columns[%d]' % (field, side, j), 'column %s.%s does not exist' % (table, c))
            if cols[c.lower()]['generated']:
                raise SpecError('%s.%s.columns[%d]' % (field, side, j), 'column %s.%s is generated and cannot be synced' % (table, c))
    _check_pairs(spec, fcols, tcols)
    if spec.from_key.lower() not in fcols:
        raise SpecError(field + '.from.key', 'column %s.%s does not exist' % (spec.from_table, spec.from_key))
    findex = _indexes(conn, db, spec.from_table)
    pk = findex.get('PRIMARY', {}).get('columns', [])
    if pk != [spec.from_key.lower()]:
        raise SpecError(field + '.from.key', '%s must be the single-column primary key of %s (primary key is %s)'
                        % (spec.from_key, spec.from_table, '(%s)' % ', '.join(pk) if pk else 'missing'))
    key_type = fcols[spec.from_key.lower()]['type']
    from_types = [fcols[c.lower()]['type'] for c in spec.from_columns]
    to_types = [tcols[c.lower()]['type'] for c in spec.to_columns]
    if spec.kind == 'same':
        return SyncPlan(migration_id, spec, from_types, to_types, key_type)

    if spec.to_key.lower() not in tcols:
        raise SpecError(field + '.to.key', 'column %s.%s does not exist' % (spec.to_table, spec.to_key))
    problem = capacity_problem(fcols[spec.from_key.lower()], tcols[spec.to_key.lower()])
    if problem:
        raise SpecError(field + '.to.key', 'column %s.%s: %s (%s.%s)' % (spec.to_table, spec.to_key, problem, spec.from_table, spec.from_key))
    tindex = _indexes(conn, db, spec.to_table)
    key_index = None
    for name, entry in sorted(tindex.items()):
        if entry['unique'] and entry['columns'] == [spec.to_key.lower()]:
            key_index = name
            break
    if key_index is None:
        raise SpecError(field + '.to.key', 'the sync needs a UNIQUE index on %s(%s) while it exists (1:1 rows); add one, e.g. '
                                           'create_index {table: %s, name: %s_%s_uniq, columns: [%s], unique: true}'
                        % (spec.to_table, spec.to_key, spec.to_table, spec.to_table, spec.to_key, spec.to_key))
    # Upserts address the row by to.key only: any other UNIQUE index could make
    # ON DUPLICATE KEY UPDATE hit a different row, so refuse it.
    tpk = tindex.get('PRIMARY', {}).get('columns', [])
    for name, entry in sorted(tindex.items()):
        if not entry['unique'] or name == key_index:
            continue
        if name == 'PRIMARY' and (tpk == [spec.to_key.lower()] or (len(tpk) == 1 and 'auto_increment' in tcols[tpk[0]]['extra'])):
            continue
        raise SpecError(field + '.to.table', 'unique index %s on %s(%s) is not allowed while the sync exists: rows are matched '
                                             'by %s only (the primary key must be %s or an AUTO_INCREMENT column)'
                        % (name, spec.to_table, ', '.join(entry['columns']), spec.to_key, spec.to_key))
    mapped = set([spec.to_key.lower()] + [c.lower() for c in spec.to_columns])
    autoinc = None
    for lname, col in sorted(tcols.items()):
        if 'auto_increment' in col['extra']:
            autoinc = col['name']
        if lname in mapped or col['nullable'] or col['generated'] or 'auto_increment' in col['extra']:
            continue
        if col['default'] is None:
            raise SpecError(field + '.to.table', 'column %s.%s is NOT NULL without a default and not synced: the triggers '
                                                 'could not create rows' % (spec.to_table, col['name']))
    return SyncPlan(migration_id, spec, from_types, to_types, key_type, target_autoinc=autoinc, to_key_index=key_index,
                    cascade_delete=_has_cascade_fk(conn, db, spec))


def _has_cascade_fk(conn, db, spec):
    """True when a foreign key to.table(to.key) -> from.table(from.key) deletes the new row ON DELETE CASCADE."""
    for fk in mysql_connection.foreign_keys(conn, db, spec.to_table).values():
        # the referenced table must be this schema's from.table: a same-named table elsewhere cascades nothing here
        if (fk['ref_schema'] == db and fk['ref_table'] == spec.from_table and fk['on_delete'] == 'CASCADE'
                and [c.lower() for c in fk['columns']] == [spec.to_key.lower()]
                and [c.lower() for c in fk['ref_columns']] == [spec.from_key.lower()]):
            return True
    return False


def inspect_all(conn, db, migration):
    return [inspect_sync(conn, db, migration.id, spec) for spec in migration.sync]


# -------------------------------------------------------------------- live triggers

def _normalize(body):
    return re.sub(r'\s+', ' ', (body or '').strip())


def existing_triggers(conn, db):
    """Map trigger name -> {table, timing, event, body} for every trigger of ``db``."""
    return dict((t['name'], dict(table=t['table'], timing=t['timing'], event=t['event'], body=t['statement']))
                for t in mysql_connection.triggers(conn, db))


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


# -------------------------------------------------------------------- DDL with short lock waits

def run_ddl(conn, statements, lock_wait_timeout=1, retries=10, sleep=time.sleep):
    """Run DDL statements one by one under a short lock_wait_timeout, retrying lock timeouts with backoff."""
    with conn.cursor() as cur:
        cur.execute('SET SESSION lock_wait_timeout = %s', (int(max(1, lock_wait_timeout)),))
        for sql in statements:
            attempt = 0
            while True:
                try:
                    cur.execute(sql)
                    break
                except Exception as exc:  # pylint: disable=broad-except  # driver errors: only lock waits retry
                    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
                    if code in (ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK) and attempt < retries:
                        attempt += 1
                        sleep(min(0.1 * (2 ** attempt), 5.0))
                        continue
                    if code in (ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK):
                        raise DatabaseError('gave up after %d retries waiting for a metadata lock (lock_wait_timeout=%ss): %s'
                                            % (retries, lock_wait_timeout, sql.split(' FOR EACH ROW')[0]))
                    raise DatabaseError('%s failed: %s' % (sql.split(' FOR EACH ROW')[0], exc.args[-1] if exc.args else exc))


def check_trigger_privileges(conn):
    """With binary logging on, creating triggers needs SUPER or log_bin_trust_function_creators: fail up front."""
    row = query(conn, 'SELECT @@GLOBAL.log_bin, @@GLOBAL.log_bin_trust_function_creators')[0]
    if not int(row[0] or 0) or int(row[1] or 0):
        return
    grants = ' '.join(r[0] for r in query(conn, 'SHOW GRANTS')).upper()
    if re.search(r'GRANT (ALL PRIVILEGES|[^`]*\bSUPER\b)[^`]* ON \*\.\*', grants):
        return
    raise DatabaseError('binary logging is on and the login user has neither SUPER nor does the server set '
                        'log_bin_trust_function_creators=1: the server would refuse to create the sync triggers. '
                        'Grant SUPER (or set log_bin_trust_function_creators=1) and retry')
