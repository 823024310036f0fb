# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MySQL/MariaDB connection and schema introspection helpers (no Ansible import).

The options are module_args.MYSQL_CONNECTION_SPEC (community.mysql's names).  :func:`connect` turns
login failures into :class:`ConnectionFailed` with a clear message that never contains the password.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import traceback
from collections import OrderedDict

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ConnectionFailed
from ansible_collections.zdt.bluegreen.plugins.module_utils.sql_identifiers import quote_identifier

try:
    import pymysql
    HAS_PYMYSQL = True
    PYMYSQL_IMPORT_ERROR = None
except ImportError:
    pymysql = None
    HAS_PYMYSQL = False
    PYMYSQL_IMPORT_ERROR = traceback.format_exc()


# Server error codes used across the collection.
ER_DBACCESS_DENIED = 1044
ER_ACCESS_DENIED = 1045
ER_BAD_DB = 1049
ER_NO_SUCH_TABLE = 1146
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213
ER_ALTER_OPERATION_NOT_SUPPORTED = 1845
ER_ALTER_OPERATION_NOT_SUPPORTED_REASON = 1846
CR_CONNECTION_ERROR = 2002
CR_CONN_HOST_ERROR = 2003
CR_UNKNOWN_HOST = 2005
CR_SERVER_GONE = 2006
CR_SERVER_LOST = 2013


def error_code(exc):
    """The numeric MySQL error code of a PyMySQL exception, or None."""
    args = getattr(exc, 'args', ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def error_message(exc):
    args = getattr(exc, 'args', ())
    if len(args) >= 2:
        return str(args[1])
    return str(exc)


def _scrub(text, password):
    if password:
        text = text.replace(password, '********')
    return text


def connection_kwargs(params):
    """Translate module params into PyMySQL keyword arguments."""
    kwargs = dict(charset='utf8mb4', autocommit=True)
    config_file = params.get('config_file')
    if config_file:
        config_file = os.path.expanduser(config_file)
        if os.path.isfile(config_file):
            kwargs['read_default_file'] = config_file
            kwargs['read_default_group'] = 'client'
    if params.get('login_unix_socket'):
        kwargs['unix_socket'] = params['login_unix_socket']
    else:
        kwargs['host'] = params.get('login_host') or 'localhost'
        kwargs['port'] = int(params.get('login_port') or 3306)
    if params.get('login_user') is not None:
        kwargs['user'] = params['login_user']
    if params.get('login_password') is not None:
        kwargs['password'] = params['login_password']
    if params.get('database'):
        kwargs['database'] = params['database']
    kwargs['connect_timeout'] = int(params.get('connect_timeout') or 30)
    if params.get('ca_cert'):
        kwargs['ssl_ca'] = params['ca_cert']
    if params.get('client_cert'):
        kwargs['ssl_cert'] = params['client_cert']
    if params.get('client_key'):
        kwargs['ssl_key'] = params['client_key']
    if params.get('check_hostname') is not None:
        kwargs['ssl_verify_identity'] = bool(params['check_hostname'])
        if params['check_hostname']:
            kwargs['ssl_verify_cert'] = True
    return kwargs


def describe_target(params):
    if params.get('login_unix_socket'):
        where = 'unix socket %s' % params['login_unix_socket']
    else:
        where = '%s:%s' % (params.get('login_host') or 'localhost', params.get('login_port') or 3306)
    return where


def connect(params, autocommit=True, driver=None):
    """Open a PyMySQL connection from module params; raise ConnectionFailed with a clear message."""
    driver = driver or pymysql
    if driver is None:
        raise ConnectionFailed('PyMySQL is not installed: %s' % (PYMYSQL_IMPORT_ERROR or 'import failed'))
    kwargs = connection_kwargs(params)
    kwargs['autocommit'] = autocommit
    password = params.get('login_password')
    user = params.get('login_user') or '(from config file or default)'
    where = describe_target(params)
    try:
        return driver.connect(**kwargs)
    except driver.err.MySQLError as exc:
        code = error_code(exc)
        detail = _scrub(error_message(exc), password)
        if code == ER_ACCESS_DENIED:
            msg = 'access denied for user %s on %s: wrong user or password (%s)' % (user, where, detail)
        elif code == ER_DBACCESS_DENIED:
            msg = 'user %s may not use database %s on %s (%s)' % (user, params.get('database'), where, detail)
        elif code == ER_BAD_DB:
            msg = 'unknown database %s on %s' % (params.get('database'), where)
        elif code in (CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR, CR_UNKNOWN_HOST, CR_SERVER_LOST, CR_SERVER_GONE):
            msg = 'cannot reach the MySQL server at %s (%s)' % (where, detail)
        else:
            msg = 'cannot connect to the MySQL server at %s: error %s: %s' % (where, code, detail)
        raise ConnectionFailed(msg)
    except (OSError, IOError, ValueError) as exc:
        raise ConnectionFailed('cannot connect to the MySQL server at %s: %s' % (where, _scrub(str(exc), password)))


# --------------------------------------------------------------------------------------------
# Introspection helpers (values always as query parameters)
# --------------------------------------------------------------------------------------------

def query(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


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
    """OrderedDict column name -> {type, column_type, nullable, default, extra, key, position}."""
    rows = query(conn, 'SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, COLUMN_KEY, ORDINAL_POSITION '
                       'FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION',
                 (db, table))
    result = OrderedDict()
    for name, dtype, ctype, nullable, default, extra, key, pos in rows:
        result[name] = dict(type=dtype, column_type=ctype, nullable=(nullable == 'YES'), default=default,
                            extra=extra, key=key, position=pos)
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
