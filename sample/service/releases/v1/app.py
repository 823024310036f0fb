#!/usr/bin/env python
"""Sample service, release 1: users with a single address held in users.address_line_1/2.

A release is this directory: this file and the ``zdt_sample`` package next to it (in the repository a link to
sample/service/common/zdt_sample; zdt.bluegreen packs the directory with the link followed).
Run: ``python3 app.py`` with the ZDT_*/APP_*/DB_* environment described in sample/README.md.
"""
import sys

# pylint: disable=import-error  # zdt_sample sits next to this file (a link to ../../common/zdt_sample in the repository)
from zdt_sample.server import HTTPError, Service, html_response, json_response, run
from zdt_sample.users import page_args, parse_id, render_index, user_json, validate_user

SELECT_USER = 'SELECT id, name, email, address_line_1, address_line_2 FROM users'


def _row_json(row):
    user_id, name, email, line1, line2 = row
    addresses = [(None, line1, line2)] if (line1 is not None or line2 is not None) else []
    return user_json(user_id, name, email, addresses)


class UsersV1(Service):
    """The seed's first version."""

    version = 1

    def routes(self):
        return [
            ('GET', '/', self.index),
            ('GET', '/api/users', self.list_users),
            ('POST', '/api/users', self.create_user),
            ('GET', r'/api/users/(?P<user_id>[^/]+)', self.get_user),
            ('PUT', r'/api/users/(?P<user_id>[^/]+)', self.replace_user),
            ('PATCH', r'/api/users/(?P<user_id>[^/]+)', self.patch_user),
            ('DELETE', r'/api/users/(?P<user_id>[^/]+)', self.delete_user),
        ]

    def _page(self, request):
        limit, after = page_args(request.query)

        def work(cur):
            cur.execute(SELECT_USER + ' WHERE id > %s ORDER BY id LIMIT %s', (after, limit))
            return [_row_json(row) for row in cur.fetchall()]
        return limit, after, self.transaction(work)

    def index(self, request):
        limit, after, users = self._page(request)
        return html_response(200, render_index(self.version, self.config.color, users, limit, after))

    def list_users(self, request):
        limit, after, users = self._page(request)
        return json_response(200, {'users': users, 'limit': limit, 'after': after,
                                   'next_after': users[-1]['id'] if len(users) == limit else None})

    @staticmethod
    def _fetch(cur, user_id, lock=False):
        cur.execute(SELECT_USER + ' WHERE id = %s' + (' FOR UPDATE' if lock else ''), (user_id,))
        row = cur.fetchone()
        if row is None:
            raise HTTPError(404, 'no such user: %d' % user_id)
        return row

    def get_user(self, request, user_id):  # pylint: disable=unused-argument
        user_id = parse_id(user_id, 'user')
        return json_response(200, _row_json(self.transaction(lambda cur: self._fetch(cur, user_id))))

    def create_user(self, request):
        fields = validate_user(request.json())

        def work(cur):
            cur.execute('INSERT INTO users (name, email, address_line_1, address_line_2) VALUES (%s, %s, %s, %s)',
                        (fields['name'], fields['email'], fields['address_line_1'], fields['address_line_2']))
            return self._fetch(cur, cur.lastrowid)
        return json_response(201, _row_json(self.transaction(work)))

    def _update(self, user_id, fields):
        def work(cur):
            self._fetch(cur, user_id, lock=True)
            names = sorted(fields)
            cur.execute('UPDATE users SET ' + ', '.join('`%s` = %%s' % name for name in names) + ' WHERE id = %s',
                        [fields[name] for name in names] + [user_id])
            return self._fetch(cur, user_id)
        return json_response(200, _row_json(self.transaction(work)))

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


if __name__ == '__main__':
    sys.exit(run(UsersV1))
