# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only reads of the live server and schema from information_schema (no Ansible import).

The one place that knows how to read a table's columns, indexes, foreign keys and triggers, the server's version and
who a session is.  Names are looked up the way the server resolves identifiers (case-sensitive under
``lower_case_table_names=0``), so no client-side case folding; values always go as query parameters.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from collections import OrderedDict

from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import query
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_errors import ER_NO_SUCH_TABLE, error_code
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import quote_identifier


def server_version(conn):
    """Return ``(flavor, (major, minor, patch), raw)``; flavor is 'mariadb' or 'mysql'."""
    raw = query(conn, 'SELECT VERSION()')[0][0]
    flavor = 'mariadb' if 'mariadb' in raw.lower() else 'mysql'
    nums = []
    for part in raw.split('-')[0].split('.')[:3]:
        digits = ''.join(ch for ch in part if ch.isdigit())
        nums.append(int(digits) if digits else 0)
    while len(nums) < 3:
        nums.append(0)
    return flavor, tuple(nums), raw


def autoinc_lock_mode(conn):
    """The server's ``innodb_autoinc_lock_mode`` (0, 1 or 2)."""
    return int(query(conn, 'SELECT @@GLOBAL.innodb_autoinc_lock_mode')[0][0])


def table_exists(conn, db, table, base_only=False):
    """True when ``db.table`` exists (a base table when ``base_only``, else also a view)."""
    # information_schema looks the name up the way the server resolves identifiers (case-sensitive
    # under lower_case_table_names=0), so no client-side case folding here.
    sql = 'SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s'
    if base_only:
        sql += " AND TABLE_TYPE = 'BASE TABLE'"
    return bool(query(conn, sql, (db, table)))


def tables(conn, db):
    """Names of the base tables of ``db``."""
    rows = query(conn, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'", (db,))
    return [r[0] for r in rows]


def columns(conn, db, table):
    """OrderedDict column name -> its definition, in table order ({} when the table does not exist).

    Each definition: name, type (``DATA_TYPE``, lower case), column_type (lower case, e.g. ``int(10) unsigned``),
    nullable, default, extra (lower case), key, position, generated, length (characters), charset, precision,
    scale, fsp (fractional-seconds precision).
    """
    rows = query(conn, 'SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, COLUMN_KEY, ORDINAL_POSITION, '
                       'GENERATION_EXPRESSION, CHARACTER_MAXIMUM_LENGTH, CHARACTER_SET_NAME, NUMERIC_PRECISION, NUMERIC_SCALE, '
                       'DATETIME_PRECISION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s '
                       'ORDER BY ORDINAL_POSITION', (db, table))
    result = OrderedDict()
    for name, dtype, ctype, nullable, default, extra, key, pos, gen, length, charset, precision, scale, fsp in rows:
        result[name] = dict(name=name, type=(dtype or '').lower(), column_type=(ctype or '').lower(), nullable=(nullable == 'YES'),
                            default=default, extra=(extra or '').lower(), key=key, position=pos, generated=bool(gen),
                            length=length, charset=charset, precision=precision, scale=scale, fsp=fsp)
    return result


def indexes(conn, db, table):
    """OrderedDict index name -> {columns: [..], unique: bool}, PRIMARY first."""
    rows = query(conn, 'SELECT INDEX_NAME, COLUMN_NAME, NON_UNIQUE, SEQ_IN_INDEX FROM information_schema.STATISTICS '
                       'WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY INDEX_NAME = \'PRIMARY\' DESC, INDEX_NAME, SEQ_IN_INDEX',
                 (db, table))
    result = OrderedDict()
    for name, column, non_unique, _seq in rows:
        entry = result.setdefault(name, dict(columns=[], unique=not int(non_unique)))
        entry['columns'].append(column)
    return result


def primary_key(conn, db, table):
    return list(indexes(conn, db, table).get('PRIMARY', {}).get('columns', []))


def foreign_keys(conn, db, table):
    """OrderedDict constraint name -> {columns, ref_schema, ref_table, ref_columns, on_delete} for FKs defined on ``table``."""
    rows = query(conn, 'SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, '
                       'r.DELETE_RULE FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r '
                       'ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.TABLE_NAME = k.TABLE_NAME AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME '
                       'WHERE k.TABLE_SCHEMA = %s AND k.TABLE_NAME = %s AND k.REFERENCED_TABLE_NAME IS NOT NULL '
                       'ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION', (db, table))
    result = OrderedDict()
    for name, column, ref_schema, ref_table, ref_column, on_delete in rows:
        entry = result.setdefault(name, dict(columns=[], ref_schema=ref_schema, ref_table=ref_table, ref_columns=[], on_delete=on_delete))
        entry['columns'].append(column)
        entry['ref_columns'].append(ref_column)
    return result


def referencing_foreign_keys(conn, db, table):
    """Foreign keys of *other* tables, in any schema, that reference ``db.table``: list of {schema, table, name, ref_columns}."""
    rows = query(conn, 'SELECT TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE '
                       'WHERE REFERENCED_TABLE_SCHEMA = %s AND REFERENCED_TABLE_NAME = %s AND NOT (TABLE_SCHEMA = %s AND TABLE_NAME = %s) '
                       'ORDER BY TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION', (db, table, db, table))
    result = OrderedDict()
    for schema, name, constraint, ref_column in rows:
        entry = result.setdefault((schema, name, constraint), dict(schema=schema, table=name, name=constraint, ref_columns=[]))
        entry['ref_columns'].append(ref_column)
    return list(result.values())


def triggers(conn, db):
    """List of {name, table, timing, event, statement} for every trigger in ``db``."""
    rows = query(conn, 'SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT '
                       'FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s ORDER BY TRIGGER_NAME', (db,))
    return [dict(name=r[0], table=r[1], timing=r[2], event=r[3], statement=r[4]) for r in rows]


def show_create_table(conn, table):
    """``SHOW CREATE TABLE`` text of ``table`` in the current database, or None when it does not exist."""
    try:
        rows = query(conn, 'SHOW CREATE TABLE %s' % quote_identifier(table, 'table'))
    except Exception as exc:  # pylint: disable=broad-except  # any driver error: only 1146 means 'absent'
        if error_code(exc) == ER_NO_SUCH_TABLE:
            return None
        raise
    return rows[0][1] if rows else None


def current_database(conn):
    return query(conn, 'SELECT DATABASE()')[0][0]


def session_description(conn, connection_id):
    """Who connection ``connection_id`` is and what it does, for messages that name a blocking session."""
    info = query(conn, "SELECT USER, HOST, COMMAND, TIME, STATE, LEFT(COALESCE(INFO, ''), 120) FROM information_schema.PROCESSLIST "
                       'WHERE ID = %s', (connection_id,))
    if not info:
        return 'connection id %s (not visible to this user; needs the PROCESS privilege to show more)' % connection_id
    user, host, command, secs, state, running = info[0]
    return 'connection id %s (user %s from %s, %s for %ss%s%s)' % (
        connection_id, user, host, command, secs, ', state %s' % state if state else '', ', running: %s' % running if running else '')
