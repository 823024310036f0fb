# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""DDL text for the migration ops of ``mysql_expand`` (pure, no I/O, no Ansible import).

Every name goes through :func:`mysql_quoting.quote_identifier`; column definitions render themselves from their
validated parts (:class:`migration_spec.Column`).  ALTERs carry the algorithm that keeps them online.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import quote_identifier

INSTANT = 'ALGORITHM=INSTANT'
INPLACE = 'ALGORITHM=INPLACE, LOCK=NONE'


def column_list(names):
    """``a`, `b``: quoted column names, comma separated."""
    return ', '.join(quote_identifier(n, 'column') for n in names)


def foreign_key_clause(fk):
    """``CONSTRAINT ... FOREIGN KEY ... REFERENCES ...`` of a :class:`migration_spec.ForeignKey`."""
    text = 'CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s)' % (
        quote_identifier(fk.name), column_list(fk.columns), quote_identifier(fk.ref_table), column_list(fk.ref_columns))
    if fk.on_delete:
        text += ' ON DELETE ' + fk.on_delete
    if fk.on_update:
        text += ' ON UPDATE ' + fk.on_update
    return text


def create_table_sql(args):
    pk = set(c.lower() for c in args['primary_key'])
    parts = [c.sql(force_not_null=c.name.lower() in pk) for c in args['columns']]
    if args['primary_key']:
        parts.append('PRIMARY KEY (%s)' % column_list(args['primary_key']))
    for idx in args['indexes']:
        parts.append('%s %s (%s)' % ('UNIQUE KEY' if idx.unique else 'KEY', quote_identifier(idx.name), column_list(idx.columns)))
    for fk in args['foreign_keys']:
        parts.append(foreign_key_clause(fk))
    return 'CREATE TABLE %s (%s) ENGINE=InnoDB' % (quote_identifier(args['table']), ', '.join(parts))


def add_column_sql(table, column, algorithm=INSTANT):
    return 'ALTER TABLE %s ADD COLUMN %s, %s' % (quote_identifier(table), column.sql(), algorithm)


def modify_column_sql(table, column, algorithm=INSTANT):
    """An in-place change of a column (the planner only plans widenings the server makes online)."""
    return 'ALTER TABLE %s MODIFY COLUMN %s, %s' % (quote_identifier(table), column.sql(), algorithm)


def add_foreign_key_sql(table, fk):
    """Online only with the session's foreign_key_checks off (schema_apply sets it and counts orphans itself)."""
    return 'ALTER TABLE %s ADD %s, %s' % (quote_identifier(table), foreign_key_clause(fk), INPLACE)


def drop_foreign_key_sql(table, name, algorithm=INSTANT):
    return 'ALTER TABLE %s DROP FOREIGN KEY %s, %s' % (quote_identifier(table), quote_identifier(name), algorithm)


def create_index_sql(table, name, columns, unique=False, algorithm=INPLACE):
    return 'ALTER TABLE %s ADD %sINDEX %s (%s), %s' % (
        quote_identifier(table), 'UNIQUE ' if unique else '', quote_identifier(name), column_list(columns), algorithm)


def drop_index_sql(table, name, algorithm=INPLACE):
    return 'ALTER TABLE %s DROP INDEX %s, %s' % (quote_identifier(table), quote_identifier(name), algorithm)


def drop_columns_sql(table, columns, algorithm=INSTANT):
    return 'ALTER TABLE %s %s, %s' % (quote_identifier(table), ', '.join('DROP COLUMN %s' % quote_identifier(c) for c in columns), algorithm)


def drop_table_sql(table):
    return 'DROP TABLE %s' % quote_identifier(table)
