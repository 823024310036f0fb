# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server-side named locks (``GET_LOCK``): one run of a thing at a time, per server (no Ansible import).

A named lock belongs to the connection that took it, so a killed run's lock goes away with its connection (a
lingering connection keeps it until the server notices; a second run then waits a bounded time and fails naming
the holder).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import query
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_inspect import session_description

MAX_LOCK_NAME = 64   # the server refuses longer names


def lock_name(prefix, database, suffix=''):
    """``prefix + database + suffix``; the database name is hashed when the whole would exceed the server's limit."""
    name = '%s%s%s' % (prefix, database, suffix)
    if len(name) > MAX_LOCK_NAME:
        name = '%s%s%s' % (prefix, hashlib.sha1(database.encode('utf-8')).hexdigest()[:24], suffix)
    return name


def holder(conn, name):
    """Who holds lock ``name`` now."""
    rows = query(conn, 'SELECT IS_USED_LOCK(%s)', (name,))
    connection_id = rows[0][0] if rows else None
    if connection_id is None:
        return 'no session (it was released meanwhile)'
    return session_description(conn, connection_id)


def acquire(conn, name, timeout, busy):
    """Take lock ``name``, waiting up to ``timeout`` seconds; else raise DatabaseError ``busy``, naming the holder."""
    timeout = max(0, int(timeout))
    got = query(conn, 'SELECT GET_LOCK(%s, %s)', (name, timeout))[0][0]
    if got != 1:
        raise DatabaseError('%s: lock %s is held by %s (waited %ss)' % (busy, name, holder(conn, name), timeout))
    return name


def in_use(conn, name):
    return query(conn, 'SELECT IS_USED_LOCK(%s)', (name,))[0][0] is not None


def release(conn, name):
    try:
        query(conn, 'SELECT RELEASE_LOCK(%s)', (name,))
    except Exception:  # pylint: disable=broad-except  # the connection may be gone; the server releases the lock with it
        pass
