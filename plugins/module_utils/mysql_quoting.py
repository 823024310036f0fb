# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything that puts a user's name or value into SQL text: the one identifier quoter and the literal renderer.

Identifiers: every table, column, index, trigger, charset or collation name that reaches SQL text goes through
:func:`quote_identifier`.  It validates against a strict allow-list *and* quotes, so a name can
never end a quoted identifier, start a comment or a second statement:

* a ``str`` of 1..64 characters (MariaDB/MySQL limit, counted in characters);
* first character a letter (any Unicode letter) or ``_`` or ``$``; the rest letters, digits,
  ``_`` or ``$``;
* only Basic Multilingual Plane characters (identifiers are stored as utf8mb3);
* reserved words are fine: the result is always backtick-quoted.

Backticks, quotes, ``;``, whitespace, ``.``, ``-``, NUL, control characters and anything else are
rejected with an :class:`IdentifierError` that names the field the name came from.

Literals (column defaults, ENUM values) are rendered by :func:`sql_literal` from validated Python values;
everything else a module sends goes as a query parameter.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import math
import re

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import IdentifierError

MAX_IDENTIFIER_LENGTH = 64

_IDENTIFIER_RE = re.compile(r'^(?:[^\W\d]|\$)[\w$]*\Z', re.UNICODE)


def validate_identifier(name, field='identifier'):
    """Return ``name`` unchanged if it is an acceptable identifier, else raise IdentifierError(field)."""
    if not isinstance(name, str) or isinstance(name, bool):
        raise IdentifierError(field, 'must be a string identifier, got %s' % type(name).__name__)
    if not name:
        raise IdentifierError(field, 'must not be empty')
    if len(name) > MAX_IDENTIFIER_LENGTH:
        raise IdentifierError(field, 'identifier longer than %d characters: %r' % (MAX_IDENTIFIER_LENGTH, name[:80]))
    if any(ord(c) > 0xFFFF for c in name):
        raise IdentifierError(field, 'identifier %r contains characters outside the Basic Multilingual Plane' % (name,))
    if not _IDENTIFIER_RE.match(name):
        raise IdentifierError(
            field,
            'invalid identifier %r: use letters, digits, "_" or "$", not starting with a digit '
            '(no quotes, backticks, spaces, dots or other punctuation)' % (name,))
    return name


def is_valid_identifier(name):
    """True when :func:`validate_identifier` would accept ``name``."""
    try:
        validate_identifier(name)
    except IdentifierError:
        return False
    return True


def quote_identifier(name, field='identifier'):
    """Validate ``name`` and return it backtick-quoted: ``users`` -> ```users```."""
    validate_identifier(name, field)
    # The allow-list excludes backticks; doubling is kept as defence in depth.
    return '`%s`' % name.replace('`', '``')


def quote_qualified(schema, name, field='identifier'):
    """Return ```schema`.`name``` with both parts validated."""
    return '%s.%s' % (quote_identifier(schema, field + '.schema' if field else 'schema'), quote_identifier(name, field))


def literal_text_problem(value):
    """Why the string ``value`` cannot be rendered as a literal (None when it can).

    Backslashes and control characters are refused so that doubling the single quote is a complete escape whatever
    the sql_mode (NO_BACKSLASH_ESCAPES or not)."""
    if '\\' in value:
        return 'backslashes are not supported in literal values'
    if any(ord(c) < 32 and c not in '\t\n' for c in value):
        return 'control characters are not supported in literal values'
    return None


def sql_string_literal(value):
    """Quote a string that :func:`literal_text_problem` accepts as a SQL literal."""
    if '\\' in value or '\x00' in value:
        raise ValueError('refusing to render a literal with a backslash or NUL')
    return "'%s'" % value.replace("'", "''")


def sql_literal(value):
    """Render a validated default value: None, bool, int, finite float or str."""
    if value is None:
        return 'NULL'
    if isinstance(value, bool):
        return 'TRUE' if value else 'FALSE'
    if isinstance(value, int):
        return '%d' % value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError('non-finite float')
        return repr(value)
    if isinstance(value, str):
        return sql_string_literal(value)
    raise ValueError('unsupported literal %r' % (value,))
