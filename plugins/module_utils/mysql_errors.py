# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MySQL/MariaDB error codes the collection reacts to, how to read them off a driver exception, and the retry policy.

Every module_utils file reads error codes through :func:`error_code` and retries lock errors with
:func:`backoff_delay`; nothing else defines a code or a backoff.  No Ansible import.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import random

# server errors
ER_DBACCESS_DENIED = 1044
ER_ACCESS_DENIED = 1045
ER_BAD_DB = 1049
ER_TABLE_EXISTS = 1050
ER_BAD_FIELD = 1054
ER_DUP_FIELDNAME = 1060
ER_DUP_ENTRY = 1062
ER_DUP_KEYNAME = 1061
ER_CANT_DROP_FIELD_OR_KEY = 1091
ER_NO_SUCH_TABLE = 1146
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213
ER_ALTER_OPERATION_NOT_SUPPORTED = 1845
ER_ALTER_OPERATION_NOT_SUPPORTED_REASON = 1846
# warnings
WARN_GROUP_CONCAT_CUT = 1260
WARN_DEPRECATED_SYNTAX = 1287
# client errors
CR_CONNECTION_ERROR = 2002
CR_CONN_HOST_ERROR = 2003
CR_UNKNOWN_HOST = 2005
CR_SERVER_GONE = 2006
CR_SERVER_LOST = 2013

# A statement that failed with one of these changed nothing and may simply be run again.
LOCK_ERRORS = (ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK)
# The server cannot make the ALTER with the ALGORITHM/LOCK asked for (it would copy the table or block writers).
ONLINE_REFUSED = (ER_ALTER_OPERATION_NOT_SUPPORTED, ER_ALTER_OPERATION_NOT_SUPPORTED_REASON)
UNREACHABLE = (CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR, CR_UNKNOWN_HOST, CR_SERVER_LOST, CR_SERVER_GONE)


def error_code(exc):
    """The numeric MySQL error code of a PyMySQL exception, or None."""
    args = getattr(exc, 'args', ())
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        return args[0]
    return None


def error_message(exc):
    """The server's message of a PyMySQL exception (without the code), else str(exc)."""
    args = getattr(exc, 'args', ())
    if len(args) >= 2:
        return str(args[1])
    return str(exc)


def is_lock_error(exc):
    return error_code(exc) in LOCK_ERRORS


def backoff_delay(attempt, base=0.1, cap=5.0, rand=random.random):
    """Exponential backoff with jitter for retry ``attempt`` (0-based): about base * 2**attempt, at most ``cap``.

    The jitter (50-100 % of the step) keeps two clients that hit the same lock from retrying in lock step.
    """
    delay = min(cap, base * (2 ** attempt))
    return delay * (0.5 + rand() / 2)
