# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``mysql_expand``'s planner knows of the live schema: tables, columns, indexes, foreign keys, triggers, server.

:func:`load_model` reads it once from information_schema; the planner then works on the model alone (and updates
it as each planned step would), so a whole phase is checked before its first statement runs.  No Ansible import.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
from collections import OrderedDict

from ansible_collections.zdt.bluegreen.plugins.module_utils import mysql_inspect
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import query


class TableModel(object):
    """What the planner knows about one table: columns, indexes, foreign keys (names compared case-insensitively)."""

    def __init__(self, name, columns=(), indexes=None, foreign_keys=None, column_defs=None):
        self.name = name
        self.columns = OrderedDict((c.lower(), c) for c in columns)
        # lower name -> the live definition (mysql_inspect.columns, plus collation and comment); empty for a planned table
        self.column_defs = dict((k.lower(), v) for k, v in (column_defs or {}).items())
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
    flavor, version, _raw = mysql_inspect.server_version(conn)
    tables = {}
    inbound = {}
    names = sorted(set(table_names))
    for name in names:
        if not mysql_inspect.table_exists(conn, database, name):
            continue
        defs = mysql_inspect.columns(conn, database, name)
        for cname, collation, comment in query(
                conn, 'SELECT COLUMN_NAME, COLLATION_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS '
                      'WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s', (database, name)):
            if cname in defs:
                defs[cname].update(collation=collation, comment=comment or '')
        tables[name] = TableModel(name, list(defs), mysql_inspect.indexes(conn, database, name),
                                  mysql_inspect.foreign_keys(conn, database, name), defs)
        # another schema's referencing table is named with its schema: no table of this plan can be it
        inbound[name] = [(fk['table'] if fk['schema'] == database else '%s.%s' % (fk['schema'], fk['table']), fk['name'], fk['ref_columns'])
                         for fk in mysql_inspect.referencing_foreign_keys(conn, database, name)]
    return SchemaModel(database, tables, mysql_inspect.triggers(conn, database), flavor, version, inbound)


def tables_of(migration, phase):
    """Every table a phase reads or changes (op tables and foreign-key targets)."""
    ops = migration.expand if phase in ('expand', 'rollback') else migration.contract
    names = set()
    for op in ops:
        if op.args.get('table'):
            names.add(op.args['table'])
        for fk in op.args.get('foreign_keys') or ():
            names.add(fk.ref_table)
        if op.args.get('foreign_key'):
            names.add(op.args['foreign_key'].ref_table)
    return names
