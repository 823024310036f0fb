# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``up`` / ``down`` expressions of mapped columns: an explicit escape hatch, checked before anything changes (no Ansible import).

A mapped column (``alter_column``, a mapped pair of a cross-table ``sync`` entry) may carry SQL expressions the user
writes: ``up`` computes the new column from the old row, ``down`` the old column from the new row.  They are pasted
into the trigger bodies, the backfill and the verify, like an ``sql`` step is run: the collection does not parse SQL.
So they are checked twice before anything changes:

* here, on their text (:func:`expression_problem`): one expression, no statement separator, no comment, balanced
  quotes and parentheses, no backslash - so a mistake cannot end the trigger body or hide the rest of a statement;
* by the server (:func:`check_expression`): ``SELECT (expr) FROM (<the row>) AS zdt_row LIMIT 0`` over the live
  table, with columns the expand has not added yet present virtually (``CAST(NULL AS type)``).  The row is built
  exactly as the trigger builds it, so an expression that passes the check resolves the same names in the trigger.

Expressions name columns bare (``LOWER(email)``).  Inside a trigger there are no bare columns, only ``NEW.col``: the
expression is evaluated over a one-row derived table of the NEW values of the columns it names
(:func:`row_expression`).  Which columns it names is found by matching the table's column names as words in its text;
a name that only appears inside a string literal just adds a column to the derived row.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_errors import error_code, error_message
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import quote_identifier as q

MAX_EXPRESSION_LENGTH = 2000
ROW_ALIAS = 'zdt_row'


def expression_problem(text):
    """Why ``text`` cannot be an ``up`` / ``down`` expression (None when it can)."""
    if not isinstance(text, str) or not text.strip():
        return 'must be a non-empty SQL expression'
    if len(text) > MAX_EXPRESSION_LENGTH:
        return 'longer than %d characters' % MAX_EXPRESSION_LENGTH
    if '\\' in text:
        return 'backslashes are not supported in an expression'
    if any(ord(c) < 32 and c not in '\t\n\r' for c in text):
        return 'control characters are not supported in an expression'
    depth = 0
    quote = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                if text[i + 1:i + 2] == quote:      # a doubled quote stays inside
                    i += 2
                    continue
                quote = None
        elif c in '\'"`':
            quote = c
        elif c == ';':
            return 'one expression only: ";" is not allowed outside a quoted string'
        elif c == '#' or text.startswith('--', i) or text.startswith('/*', i) or text.startswith('*/', i):
            return 'comments are not allowed in an expression'
        elif c == '(':
            depth += 1
        elif c == ')':
            depth -= 1
            if depth < 0:
                return 'unbalanced parentheses'
        i += 1
    if quote:
        return 'unterminated quoted string or name'
    if depth:
        return 'unbalanced parentheses'
    return None


def _word_re(name):
    return re.compile(r'(?<![\w$])%s(?![\w$])' % re.escape(name), re.I | re.U)


def referenced_columns(text, columns):
    """The names of ``columns`` (in their order) that appear as words in the expression ``text``."""
    return [c for c in columns if _word_re(c).search(text)]


def row_expression(text, columns, prefix=None):
    """SQL that evaluates the expression over a row.

    ``prefix`` None: the expression as it stands (inside a statement on the table itself, e.g. the backfill's UPDATE).
    ``prefix`` 'NEW' (a trigger): over a one-row derived table of ``NEW.col AS col`` for the ``columns`` it names.
    """
    if prefix is None:
        return '(%s)' % text
    used = referenced_columns(text, columns)
    if not used:
        return '(%s)' % text
    row = ', '.join('%s.%s AS %s' % (prefix, q(c, 'column'), q(c, 'column')) for c in used)
    return '(SELECT (%s) FROM (SELECT %s) AS %s)' % (text, row, ROW_ALIAS)


# CAST targets for columns that do not exist yet (the check's virtual columns): close enough for name resolution
def cast_target(column_type):
    """A CAST target for a :class:`mysql_types.ColumnType` (the check's virtual column)."""
    name = column_type.name
    if column_type.is_integer or name == 'BOOLEAN':
        return 'UNSIGNED' if column_type.unsigned else 'SIGNED'
    if name == 'DECIMAL':
        return 'DECIMAL(%d,%d)' % (column_type.length, column_type.scale or 0)
    if name in ('FLOAT', 'DOUBLE'):
        return 'DOUBLE'
    if name in ('DATE',):
        return 'DATE'
    if name in ('DATETIME', 'TIMESTAMP'):
        return 'DATETIME(%d)' % (column_type.length or 0)
    if name == 'TIME':
        return 'TIME(%d)' % (column_type.length or 0)
    if name.endswith('BLOB'):
        return 'BINARY'
    if name in ('CHAR', 'VARCHAR'):
        return 'CHAR(%d)' % column_type.length
    return 'CHAR'


def check_expression(conn, table, text, live_columns, virtual, field, available=None):
    """Have the server resolve the expression over ``table``; SpecError(``field``) when it cannot.

    ``live_columns``: the table's column names now; ``virtual``: name -> ColumnType of columns the expand adds (not
    there yet, or there already: then they are read as they are); ``available``: the names the expression may use
    (default: every live and virtual column).  Runs one ``SELECT ... LIMIT 0``: reads nothing, changes nothing.
    """
    problem = expression_problem(text)
    if problem:
        raise SpecError(field, problem)
    live_lower = set(c.lower() for c in live_columns)
    names = list(available) if available is not None else list(live_columns) + [v for v in virtual if v.lower() not in live_lower]
    used = referenced_columns(text, names)
    items = []
    for c in used:
        if c.lower() in live_lower:
            items.append(q(c, 'column'))
        else:
            items.append('CAST(NULL AS %s) AS %s' % (cast_target(virtual[c]), q(c, 'column')))
    source = 'SELECT %s FROM %s' % (', '.join(items) if items else '1 AS zdt_none', q(table, 'table'))
    sql = 'SELECT (%s) AS zdt_value FROM (%s) AS %s LIMIT 0' % (text, source, ROW_ALIAS)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
    except Exception as exc:  # pylint: disable=broad-except  # the server's verdict on the user's SQL
        code = error_code(exc)
        if code is None:
            raise
        raise SpecError(field, 'the server cannot evaluate this expression over table %s (usable columns: %s): error %s: %s'
                        % (table, ', '.join(names), code, error_message(exc)))
