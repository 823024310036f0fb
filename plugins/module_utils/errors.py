# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain exceptions shared by the zdt.bluegreen module_utils.

Modules turn these into ``fail_json(msg=str(exc))``; none of them ever carries a password.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ZdtError(Exception):
    """Base class of every error raised by zdt.bluegreen module_utils."""


class SpecError(ZdtError):
    """An invalid migration spec or argument; ``field`` names where (e.g. ``expand[0].create_table.columns[2].type``)."""

    def __init__(self, field, message):
        self.field = field
        self.message = message
        super(SpecError, self).__init__('%s: %s' % (field, message) if field else message)


class IdentifierError(SpecError):
    """A name that is not an acceptable SQL identifier."""


class DatabaseError(ZdtError):
    """The server refused or failed an operation."""


class ConnectionFailed(DatabaseError):
    """Could not connect or log in (never contains the password); ``code`` is the driver's error code, if any."""

    def __init__(self, message, code=None):
        self.code = code
        super(ConnectionFailed, self).__init__(message)


class DriftError(ZdtError):
    """The migration file changed after one of its phases started."""
