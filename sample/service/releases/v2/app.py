#!/usr/bin/env python
"""Sample service, release 2: users with zero or more addresses, held in the ``addresses`` table.

v2 never reads or writes users.address_line_1/2 (the sync triggers mirror its writes to them while
v1 may still run).  The two-version window: as long as users still has those columns (or
ZDT_SINGLE_ADDRESS=1), a user can have at most one address and a second one is refused with 409;
after contract, any number.

A release is this directory: this file and the ``zdt_sample`` package next to it (in the repository a link to
sample/service/common/zdt_sample; zdt.bluegreen packs the directory with the link followed).
"""
import logging
import sys
import threading
import time

# pylint: disable=import-error  # zdt_sample sits next to this file (a link to ../../common/zdt_sample in the repository)
from zdt_sample.server import HTTPError, Service, html_response, json_response, run
from zdt_sample.users import (ADDRESS_FIELDS, page_args, parse_id, render_index, user_json,
                              validate_address, validate_user)

LOG = logging.getLogger('zdt_sample.v2')
OLD_SHAPE_QUERY = ("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                   "AND TABLE_NAME = 'users' AND COLUMN_NAME IN ('address_line_1', 'address_line_2')")
SINGLE_ADDRESS_MESSAGE = ('this user already has an address; a second address is possible only after the '
                          'schema change is contracted (the previous version may still be running)')


def _address_json(row):
    return {'id': row[0], 'user_id': row[1], 'address_line_1': row[2], 'address_line_2': row[3]}


class UsersV2(Service):
    """The seed's second version."""

    version = 2

    def __init__(self, config, pool):
        super().__init__(config, pool)
        self._shape_lock = threading.Lock()
        self._single_address = None
        self._shape_checked = 0.0

    def routes(self):
        user = r'/api/users/(?P<user_id>[^/]+)'
        address = r'/api/addresses/(?P<address_id>[^/]+)'
        return [
            ('GET', '/', self.index),
            ('GET', '/api/users', self.list_users),
            ('POST', '/api/users', self.create_user),
            ('GET', user, self.get_user),
            ('PUT', user, self.replace_user),
            ('PATCH', user, self.patch_user),
            ('DELETE', user, self.delete_user),
            ('GET', user + '/addresses', self.list_addresses),
            ('POST', user + '/addresses', self.add_address),
            ('GET', address, self.get_address),
            ('PUT', address, self.replace_address),
            ('PATCH', address, self.patch_address),
            ('DELETE', address, self.delete_address),
        ]

    def health_query(self):
        return 'SELECT 1 FROM addresses LIMIT 1'

    # ---- the two-version window

    def single_address(self, cur):
        """True while the old shape may still be in use: users still has address columns (or forced by config)."""
        if self.config.single_address is not None:
            return self.config.single_address
        now = time.monotonic()
        with self._shape_lock:
            if self._single_address is not None and now - self._shape_checked < self.config.schema_poll:
                return self._single_address
        cur.execute(OLD_SHAPE_QUERY)
        value = cur.fetchone()[0] > 0
        with self._shape_lock:
            if value != self._single_address:
                LOG.info('users %s address columns: %s', 'has' if value else 'has no',
                         'one address per user' if value else 'several addresses per user allowed')
            self._single_address = value
            self._shape_checked = now
        return value

    # ---- reading

    @staticmethod
    def _users(cur, where, args):
        cur.execute('SELECT id, name, email FROM users WHERE ' + where, args)
        users = cur.fetchall()
        if not users:
            return []
        ids = [row[0] for row in users]
        cur.execute('SELECT id, user_id, address_line_1, address_line_2 FROM addresses WHERE user_id IN (%s) '
                    'ORDER BY id' % ', '.join(['%s'] * len(ids)), ids)
        by_user = {}
        for address_id, user_id, line1, line2 in cur.fetchall():
            by_user.setdefault(user_id, []).append((address_id, line1, line2))
        return [user_json(uid, name, email, by_user.get(uid, [])) for uid, name, email in users]

    def _user(self, cur, user_id):
        users = self._users(cur, 'id = %s', (user_id,))
        if not users:
            raise HTTPError(404, 'no such user: %d' % user_id)
        return users[0]

    @staticmethod
    def _lock_user(cur, user_id):
        if cur.execute('SELECT id FROM users WHERE id = %s FOR UPDATE', (user_id,)) == 0:
            raise HTTPError(404, 'no such user: %d' % user_id)

    def _page(self, request):
        limit, after = page_args(request.query)
        users = self.transaction(lambda cur: self._users(cur, 'id > %s ORDER BY id LIMIT %s', (after, limit)))
        return limit, after, users

    def index(self, request):
        limit, after, users = self._page(request)
        return html_response(200, render_index(self.version, self.config.color, users, limit, after))

    def list_users(self, request):
        limit, after, users = self._page(request)
        return json_response(200, {'users': users, 'limit': limit, 'after': after,
                                   'next_after': users[-1]['id'] if len(users) == limit else None})

    def get_user(self, request, user_id):  # pylint: disable=unused-argument
        user_id = parse_id(user_id, 'user')
        return json_response(200, self.transaction(lambda cur: self._user(cur, user_id)))

    # ---- users (same request and response JSON as v1)

    def create_user(self, request):
        fields = validate_user(request.json())

        def work(cur):
            cur.execute('INSERT INTO users (name, email) VALUES (%s, %s)', (fields['name'], fields['email']))
            user_id = cur.lastrowid
            if fields['address_line_1'] is not None or fields['address_line_2'] is not None:
                cur.execute('INSERT INTO addresses (user_id, address_line_1, address_line_2) VALUES (%s, %s, %s)',
                            (user_id, fields['address_line_1'], fields['address_line_2']))
            return self._user(cur, user_id)
        return json_response(201, self.transaction(work))

    def _update(self, user_id, fields):
        def work(cur):
            self._lock_user(cur, user_id)
            names = sorted(set(fields) & {'name', 'email'})
            if names:
                cur.execute('UPDATE users SET ' + ', '.join('`%s` = %%s' % name for name in names) + ' WHERE id = %s',
                            [fields[name] for name in names] + [user_id])
            if set(fields) & set(ADDRESS_FIELDS):
                self._set_first_address(cur, user_id, fields)
            return self._user(cur, user_id)
        return json_response(200, self.transaction(work))

    @staticmethod
    def _set_first_address(cur, user_id, fields):
        """The flat address fields address the user's first address: update it, create it, or (both null) delete it."""
        cur.execute('SELECT id, address_line_1, address_line_2 FROM addresses WHERE user_id = %s ORDER BY id LIMIT 1 '
                    'FOR UPDATE', (user_id,))
        row = cur.fetchone()
        current = {'address_line_1': row[1], 'address_line_2': row[2]} if row else {f: None for f in ADDRESS_FIELDS}
        wanted = {f: fields.get(f, current[f]) for f in ADDRESS_FIELDS}
        if row is None:
            if wanted['address_line_1'] is not None or wanted['address_line_2'] is not None:
                cur.execute('INSERT INTO addresses (user_id, address_line_1, address_line_2) VALUES (%s, %s, %s)',
                            (user_id, wanted['address_line_1'], wanted['address_line_2']))
        elif wanted['address_line_1'] is None and wanted['address_line_2'] is None:
            cur.execute('DELETE FROM addresses WHERE id = %s', (row[0],))
        elif wanted != current:
            cur.execute('UPDATE addresses SET address_line_1 = %s, address_line_2 = %s WHERE id = %s',
                        (wanted['address_line_1'], wanted['address_line_2'], row[0]))

    def replace_user(self, request, user_id):
        user_id = parse_id(user_id, 'user')
        return self._update(user_id, validate_user(request.json()))

    def patch_user(self, request, user_id):
        user_id = parse_id(user_id, 'user')
        return self._update(user_id, validate_user(request.json(), partial=True))

    def delete_user(self, request, user_id):  # pylint: disable=unused-argument
        user_id = parse_id(user_id, 'user')

        def work(cur):
            if cur.execute('DELETE FROM users WHERE id = %s', (user_id,)) == 0:
                raise HTTPError(404, 'no such user: %d' % user_id)
        self.transaction(work)
        return json_response(200, {'id': user_id, 'deleted': True})

    # ---- addresses (v2 only)

    def list_addresses(self, request, user_id):  # pylint: disable=unused-argument
        user_id = parse_id(user_id, 'user')

        def work(cur):
            self._user(cur, user_id)
            cur.execute('SELECT id, user_id, address_line_1, address_line_2 FROM addresses WHERE user_id = %s ORDER BY id',
                        (user_id,))
            return [_address_json(row) for row in cur.fetchall()]
        return json_response(200, {'addresses': self.transaction(work)})

    def add_address(self, request, user_id):
        user_id = parse_id(user_id, 'user')
        fields = validate_address(request.json())
        if fields['address_line_1'] is None and fields['address_line_2'] is None:
            raise HTTPError(400, 'an address needs address_line_1 or address_line_2')

        def work(cur):
            self._lock_user(cur, user_id)
            cur.execute('SELECT COUNT(*) FROM addresses WHERE user_id = %s FOR UPDATE', (user_id,))
            if cur.fetchone()[0] > 0 and self.single_address(cur):
                raise HTTPError(409, SINGLE_ADDRESS_MESSAGE)
            cur.execute('INSERT INTO addresses (user_id, address_line_1, address_line_2) VALUES (%s, %s, %s)',
                        (user_id, fields['address_line_1'], fields['address_line_2']))
            return self._address(cur, cur.lastrowid)
        return json_response(201, self.transaction(work))

    @staticmethod
    def _address(cur, address_id, lock=False):
        cur.execute('SELECT id, user_id, address_line_1, address_line_2 FROM addresses WHERE id = %s'
                    + (' FOR UPDATE' if lock else ''), (address_id,))
        row = cur.fetchone()
        if row is None:
            raise HTTPError(404, 'no such address: %d' % address_id)
        return _address_json(row)

    def get_address(self, request, address_id):  # pylint: disable=unused-argument
        address_id = parse_id(address_id, 'address')
        return json_response(200, self.transaction(lambda cur: self._address(cur, address_id)))

    def _update_address(self, address_id, fields):
        def work(cur):
            current = self._address(cur, address_id, lock=True)
            wanted = {f: fields.get(f, current[f]) for f in ADDRESS_FIELDS}
            if wanted['address_line_1'] is None and wanted['address_line_2'] is None:
                raise HTTPError(400, 'an address needs address_line_1 or address_line_2 (DELETE it instead)')
            cur.execute('UPDATE addresses SET address_line_1 = %s, address_line_2 = %s WHERE id = %s',
                        (wanted['address_line_1'], wanted['address_line_2'], address_id))
            return self._address(cur, address_id)
        return json_response(200, self.transaction(work))

    def replace_address(self, request, address_id):
        return self._update_address(parse_id(address_id, 'address'), validate_address(request.json()))

    def patch_address(self, request, address_id):
        return self._update_address(parse_id(address_id, 'address'), validate_address(request.json(), partial=True))

    def delete_address(self, request, address_id):  # pylint: disable=unused-argument
        address_id = parse_id(address_id, 'address')

        def work(cur):
            if cur.execute('DELETE FROM addresses WHERE id = %s', (address_id,)) == 0:
                raise HTTPError(404, 'no such address: %d' % address_id)
        self.transaction(work)
        return json_response(200, {'id': address_id, 'deleted': True})


if __name__ == '__main__':
    sys.exit(run(UsersV2))
