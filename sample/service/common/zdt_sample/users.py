"""What both versions share about users: input validation, the JSON shape, the HTML page.

The JSON of a user is the same in v1 and v2, so a client written for one works with the other::

    {"id": 7, "name": "...", "email": "...",
     "address_line_1": "...", "address_line_2": "...",        # the user's (first) address, null when none
     "addresses": [{"id": 12, "address_line_1": "...", "address_line_2": "..."}]}

v1 has no address ids (``"id": null``) and at most one address; v2 lists every address, ordered by id,
and the flat fields are the first one.  A user without an address has both flat fields null and
``addresses: []`` — in v1 that is a users row whose address columns are both NULL.
"""
import html

from zdt_sample.server import HTTPError

LIMITS = {'name': 100, 'email': 255, 'address_line_1': 100, 'address_line_2': 100}
ADDRESS_FIELDS = ('address_line_1', 'address_line_2')
USER_FIELDS = ('name', 'email') + ADDRESS_FIELDS
DEFAULT_LIMIT = 20
MAX_LIMIT = 500


def _check_text(data, field, required):
    value = data.get(field)
    if value is None:
        if required:
            raise HTTPError(400, '%s is required' % field)
        return None
    if not isinstance(value, str):
        raise HTTPError(400, '%s must be a string or null' % field)
    if len(value) > LIMITS[field]:
        raise HTTPError(400, '%s is longer than %d characters' % (field, LIMITS[field]))
    if required and not value.strip():
        raise HTTPError(400, '%s must not be empty' % field)
    return value


def validate_user(data, partial=False):
    """Validated user fields from a request body.

    POST and PUT (partial=False): name and email required, address lines optional (missing = null).
    PATCH (partial=True): only the fields present, at least one.
    """
    unknown = sorted(set(data) - set(USER_FIELDS) - {'id', 'addresses'})
    if unknown:
        raise HTTPError(400, 'unknown field(s): %s' % ', '.join(unknown))
    if partial:
        fields = {f: _check_text(data, f, f in ('name', 'email')) for f in USER_FIELDS if f in data}
        if not fields:
            raise HTTPError(400, 'nothing to update: give one of %s' % ', '.join(USER_FIELDS))
        return fields
    return {f: _check_text(data, f, f in ('name', 'email')) for f in USER_FIELDS}


def validate_address(data, partial=False):
    unknown = sorted(set(data) - set(ADDRESS_FIELDS) - {'id', 'user_id'})
    if unknown:
        raise HTTPError(400, 'unknown field(s): %s' % ', '.join(unknown))
    if partial:
        fields = {f: _check_text(data, f, False) for f in ADDRESS_FIELDS if f in data}
        if not fields:
            raise HTTPError(400, 'nothing to update: give address_line_1 and/or address_line_2')
        return fields
    return {f: _check_text(data, f, False) for f in ADDRESS_FIELDS}


def parse_id(raw, what='id'):
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise HTTPError(400, '%s must be an integer' % what) from None
    if value <= 0 or value > 2 ** 31 - 1:
        raise HTTPError(404, 'no such %s: %s' % (what, raw))
    return value


def page_args(query):
    """limit (1..MAX_LIMIT, default 20) and after (list users with id > after, default 0) from the query."""
    try:
        limit = int(query.get('limit', DEFAULT_LIMIT))
        after = int(query.get('after', 0))
    except ValueError:
        raise HTTPError(400, 'limit and after must be integers') from None
    if limit < 1 or limit > MAX_LIMIT:
        raise HTTPError(400, 'limit must be between 1 and %d' % MAX_LIMIT)
    return limit, max(after, 0)


def user_json(user_id, name, email, addresses):
    """The common JSON shape; ``addresses`` is a list of (id or None, line1, line2) in order."""
    first = addresses[0] if addresses else (None, None, None)
    return {'id': user_id, 'name': name, 'email': email,
            'address_line_1': first[1], 'address_line_2': first[2],
            'addresses': [{'id': a[0], 'address_line_1': a[1], 'address_line_2': a[2]} for a in addresses]}


def render_index(version, color, users, limit, after):
    """The HTML page: users with their address(es)."""
    esc = html.escape
    rows = []
    for user in users:
        addresses = ''.join('<li>%s%s</li>' % (esc(a['address_line_1'] or ''),
                                               (', ' + esc(a['address_line_2'])) if a['address_line_2'] else '')
                            for a in user['addresses']) or '<li class="none">no address</li>'
        rows.append('<tr><td>%d</td><td>%s</td><td>%s</td><td><ul>%s</ul></td></tr>'
                    % (user['id'], esc(user['name'] or ''), esc(user['email'] or ''), addresses))
    title = 'Users' if version == 1 else 'Users and their addresses'
    more = ''
    if len(users) == limit:
        more = '<p><a href="/?after=%d&amp;limit=%d">next page</a></p>' % (users[-1]['id'], limit)
    return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>%s</title></head><body>\n'
            '<h1>%s</h1><p>version %d, color %s, users after id %d</p>\n'
            '<table border="1"><tr><th>id</th><th>name</th><th>email</th><th>%s</th></tr>\n%s\n</table>%s\n'
            '</body></html>\n' % (title, title, version, esc(color), after,
                                  'address' if version == 1 else 'addresses', '\n'.join(rows), more))
