# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connecting to MySQL/MariaDB with PyMySQL, and running one query (no Ansible import).

The options are module_args.MYSQL_CONNECTION_SPEC (community.mysql's names).  :func:`connect` turns
login failures into :class:`ConnectionFailed` with a clear message that never contains the password.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import traceback

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ConnectionFailed, SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_errors import (
    ER_ACCESS_DENIED, ER_BAD_DB, ER_DBACCESS_DENIED, UNREACHABLE, error_code, error_message)

try:
    import pymysql
    HAS_PYMYSQL = True
    PYMYSQL_IMPORT_ERROR = None
except ImportError:
    pymysql = None
    HAS_PYMYSQL = False
    PYMYSQL_IMPORT_ERROR = traceback.format_exc()


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


def replica_params(primary, replica):
    """Connection params of a replica: every option the replica leaves out (None) takes the primary's value.

    The location is the exception: a replica that names a host or a port never inherits the primary's unix
    socket (the socket wins over host and port, and would lead back to the primary).  A replica that names no
    location at all would be the primary itself: :class:`SpecError` (the caller adds which replica).
    """
    given = dict((k, v) for k, v in replica.items() if v is not None)
    if not any(k in given for k in ('login_host', 'login_port', 'login_unix_socket')):
        raise SpecError('', 'names neither login_host, login_port nor login_unix_socket: it would be the primary itself')
    params = dict(primary)
    if 'login_unix_socket' not in given:
        params['login_unix_socket'] = None
    params.update(given)
    if describe_target(params) == describe_target(primary):
        raise SpecError('', 'is the primary itself (%s)' % describe_target(params))
    return params


def connect(params, autocommit=True, driver=None, read_timeout=None):
    """Open a PyMySQL connection from module params; raise ConnectionFailed with a clear message.

    ``read_timeout`` (seconds) also bounds writes: a server that stops answering fails the statement instead of
    hanging (the default: no bound)."""
    driver = driver or pymysql
    if driver is None:
        raise ConnectionFailed('PyMySQL is not installed: %s' % (PYMYSQL_IMPORT_ERROR or 'import failed'))
    kwargs = connection_kwargs(params)
    kwargs['autocommit'] = autocommit
    if read_timeout:
        kwargs['read_timeout'] = kwargs['write_timeout'] = read_timeout
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
        elif code in UNREACHABLE:
            msg = 'cannot reach the MySQL server at %s (%s)' % (where, detail)
        else:
            msg = 'cannot connect to the MySQL server at %s: error %s: %s' % (where, code, detail)
        raise ConnectionFailed(msg, code)
    except (OSError, IOError, ValueError) as exc:
        raise ConnectionFailed('cannot connect to the MySQL server at %s: %s' % (where, _scrub(str(exc), password)))


def query(conn, sql, args=None):
    """Run one statement (values as query parameters) and return all its rows."""
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()
