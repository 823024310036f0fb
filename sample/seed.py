#!/usr/bin/env python
"""Load sample users into the sample service's database, fast (multi-row INSERT batches).

    seed.py --count 100000 --db-name app          # connection from DB_* environment or --db-* options

Writes the shape the database has: address columns on users (schema 001) or, when they are gone,
users plus addresses rows (contracted 002).  About 5 % of the users get no address.  With
--if-empty (the default) nothing is written when users already has rows, so reruns change nothing.
"""
import argparse
import os
import random
import sys
import time

try:
    import pymysql
except ImportError:
    pymysql = None

STREETS = ('Main', 'Oak', 'Pine', 'Maple', 'Cedar', 'Elm', 'Lake', 'Hill', 'Park', 'River', 'Church', 'Mill')
FIRST = ('Ada', 'Alan', 'Grace', 'Linus', 'Barbara', 'Ken', 'Margaret', 'Dennis', 'Radia', 'Edsger', 'Frances', 'John')
LAST = ('Lovelace', 'Turing', 'Hopper', 'Torvalds', 'Liskov', 'Thompson', 'Hamilton', 'Ritchie', 'Perlman', 'Dijkstra')


def sample_user(rng, number):
    """(name, email, address_line_1, address_line_2) of the number-th sample user."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    name = '%s %s %d' % (first, last, number)
    email = '%s.%s.%d@example.test' % (first.lower(), last.lower(), number)
    roll = rng.random()
    if roll < 0.05:
        return name, email, None, None
    line1 = '%d %s Street' % (rng.randrange(1, 9999), rng.choice(STREETS))
    line2 = 'Apt %d' % rng.randrange(1, 400) if roll < 0.5 else None
    return name, email, line1, line2


def has_address_columns(cur):
    cur.execute("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME = 'users' AND COLUMN_NAME IN ('address_line_1', 'address_line_2')")
    return cur.fetchone()[0] == 2


def _insert_rows(cur, head, rows, width):
    marks = '(' + ', '.join(['%s'] * width) + ')'
    cur.execute(head + ' VALUES ' + ', '.join([marks] * len(rows)), [value for row in rows for value in row])


def seed(conn, count, batch=5000, seed_value=1, if_empty=True, out=None):
    """Insert ``count`` users; returns the number inserted (0 when skipped because users has rows)."""
    rng = random.Random(seed_value)
    with conn.cursor() as cur:
        if if_empty:
            cur.execute('SELECT 1 FROM users LIMIT 1')
            if cur.fetchone():
                return 0
        old_shape = has_address_columns(cur)
        done = 0
        while done < count:
            users = [sample_user(rng, done + i + 1) for i in range(min(batch, count - done))]
            if old_shape:
                _insert_rows(cur, 'INSERT INTO users (name, email, address_line_1, address_line_2)', users, 4)
            else:
                _insert_rows(cur, 'INSERT INTO users (name, email)', [u[:2] for u in users], 2)
                first_id = cur.lastrowid   # multi-row INSERT: the id of the first row
                cur.execute('SELECT email, id FROM users WHERE id BETWEEN %s AND %s', (first_id, first_id + 2 * len(users)))
                ids = dict(cur.fetchall())
                if any(u[1] not in ids for u in users):
                    raise RuntimeError('the ids of a seeded batch are not where expected: seed an idle database')
                addresses = [(ids[u[1]], u[2], u[3]) for u in users if u[2] is not None]
                if addresses:
                    _insert_rows(cur, 'INSERT INTO addresses (user_id, address_line_1, address_line_2)', addresses, 3)
            conn.commit()
            done += len(users)
            if out is not None:
                out.write('\rseeded %d/%d' % (done, count))
                out.flush()
        if out is not None:
            out.write('\n')
    return done


def main(argv=None):
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--count', type=int, default=100000)
    parser.add_argument('--batch', type=int, default=5000, help='rows per INSERT statement and transaction')
    parser.add_argument('--seed', type=int, default=1, help='random seed (same seed, same data)')
    parser.add_argument('--force', action='store_true', help='insert even when users already has rows')
    parser.add_argument('--quiet', action='store_true')
    parser.add_argument('--db-host', default=env.get('DB_HOST', '127.0.0.1'))
    parser.add_argument('--db-port', type=int, default=int(env.get('DB_PORT', '3306')))
    parser.add_argument('--db-socket', default=env.get('DB_SOCKET'))
    parser.add_argument('--db-user', default=env.get('DB_USER', 'zdt'))
    parser.add_argument('--db-password', default=env.get('DB_PASSWORD'))
    parser.add_argument('--db-password-file', default=env.get('DB_PASSWORD_FILE'))
    parser.add_argument('--db-name', default=env.get('DB_NAME'), required=not env.get('DB_NAME'))
    args = parser.parse_args(argv)
    if pymysql is None:
        parser.error('PyMySQL is required')
    password = args.db_password or ''
    if args.db_password_file:
        with open(args.db_password_file, 'r', encoding='utf-8') as handle:
            password = handle.read().strip()
    params = {'user': args.db_user, 'password': password, 'database': args.db_name, 'charset': 'utf8mb4',
              'autocommit': False, 'connect_timeout': 10}
    if args.db_socket:
        params['unix_socket'] = args.db_socket
    else:
        params.update(host=args.db_host, port=args.db_port)
    if args.db_socket or args.db_host in ('127.0.0.1', 'localhost', '::1'):
        params['ssl_disabled'] = True
    conn = pymysql.connect(**params)
    started = time.monotonic()
    try:
        inserted = seed(conn, args.count, args.batch, args.seed, if_empty=not args.force,
                        out=None if args.quiet else sys.stderr)
    finally:
        conn.close()
    seconds = time.monotonic() - started
    if inserted == 0 and args.count:
        print('users already has rows: nothing seeded (use --force to add more)')
    else:
        print('seeded %d users in %.2f s (%.0f rows/s)' % (inserted, seconds, inserted / seconds if seconds else 0))
    return 0


if __name__ == '__main__':
    sys.exit(main())
