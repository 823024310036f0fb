"""Race helpers of the alter_column tests: a customers table, the migration that changes five of its columns at once
(rename with a transform, LOWER, NOT NULL filling NULLs, INT -> BIGINT, a split) and writers of both application
versions that keep an exact model of what every acknowledged write must have left in both shapes.

The model follows the trigger rules of docs/design.md: an old-version write that changes an old column sets the new
column(s) through ``up``; a new-version write that changes a new column sets the old one through ``down``; a row no
write touched since the triggers exist is "unfilled" and ends as ``up`` of its old row (the backfill).  Writers only
write values that differ from what the row holds, so "changed" is never in doubt.  Writers of both versions write
the same rows; a shared lock held around each statement and its model update makes the model's order the commit
order (autocommit), while the backfill and verify run freely underneath.
"""
import random
import threading
import time

from zdt_lab.sync_races import execute, join_writers, with_retries

OLD = ('nick', 'email', 'phone', 'full_name', 'n')
NEW = ('handle', 'email_lc', 'phone2', 'first_name', 'last_name', 'n64')
# group (the old column) -> its new columns
GROUPS = (('nick', ('handle',)), ('email', ('email_lc',)), ('phone', ('phone2',)), ('full_name', ('first_name', 'last_name')),
          ('n', ('n64',)))
OLD_DEFAULTS = dict(nick='', email=None, phone=None, full_name=None, n=None)
NEW_DEFAULTS = dict(handle='', email_lc=None, phone2='', first_name=None, last_name=None, n64=None)

MIGRATION = {
    'id': 17, 'description': 'Change five columns of customers',
    'expand': [
        {'alter_column': {'table': 'customers', 'column': 'nick', 'rename_to': 'handle', 'type': 'VARCHAR(60)',
                          'up': 'LOWER(TRIM(nick))', 'down': 'handle'}},
        {'alter_column': {'table': 'customers', 'column': 'email', 'rename_to': 'email_lc', 'up': 'LOWER(email)'}},
        {'alter_column': {'table': 'customers', 'column': 'phone', 'rename_to': 'phone2', 'nullable': False, 'default': '',
                          'up': "COALESCE(phone, '')", 'down': "NULLIF(phone2, '')"}},
        {'alter_column': {'table': 'customers', 'column': 'full_name', 'rename_to': 'first_name', 'type': 'VARCHAR(50)',
                          'up': "SUBSTRING_INDEX(full_name, ' ', 1)", 'down': "CONCAT_WS(' ', first_name, last_name)"}},
        {'alter_column': {'table': 'customers', 'column': 'full_name', 'rename_to': 'last_name', 'type': 'VARCHAR(50)',
                          'up': "SUBSTRING_INDEX(full_name, ' ', -1)"}},
        {'alter_column': {'table': 'customers', 'column': 'n', 'rename_to': 'n64', 'type': 'BIGINT'}},
        {'alter_column': {'table': 'customers', 'column': 'note', 'type': 'VARCHAR(40)', 'nullable': True}},
    ],
}


def create_customers(conn, rows):
    execute(conn, "CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, nick VARCHAR(20) NOT NULL DEFAULT '', "
                  "email VARCHAR(100), phone VARCHAR(20), full_name VARCHAR(100), n INT, note VARCHAR(20) NOT NULL DEFAULT '')")
    if rows:
        execute(conn, "INSERT INTO customers (id, nick, email, phone, full_name, n) SELECT seq, CONCAT(' Nick', seq, ' '), "
                      "IF(seq %% 7 = 0, NULL, CONCAT('User', seq, '@Example.org')), IF(seq %% 3 = 0, NULL, CONCAT('p', seq)), "
                      "IF(seq %% 11 = 0, NULL, CONCAT('First', seq, ' Last', seq)), seq FROM seq_1_to_%d" % rows)


def up(group, old):
    """The new columns of ``group`` from the old value, as the migration's up expressions compute them."""
    if group == 'nick':
        return {'handle': old.strip(' ').lower()}
    if group == 'email':
        return {'email_lc': None if old is None else old.lower()}
    if group == 'phone':
        return {'phone2': '' if old is None else old}
    if group == 'full_name':
        if old is None:
            return {'first_name': None, 'last_name': None}
        return {'first_name': old.split(' ')[0], 'last_name': old.split(' ')[-1]}
    return {'n64': old}


def down(group, new):
    """The old column of ``group`` from its new columns, as the down expressions compute it."""
    if group == 'nick':
        return new['handle']
    if group == 'email':
        return new['email_lc']
    if group == 'phone':
        return new['phone2'] or None
    if group == 'full_name':
        return ' '.join(v for v in (new['first_name'], new['last_name']) if v is not None)
    return new['n64']


class Row:
    """The expected state of one row: its old values and, per group, its new values (None: unfilled)."""

    def __init__(self, old, new=None):
        self.old = dict(old)
        self.new = dict(new or {})

    def expected(self):
        """(old shape, new shape) once the backfill filled what no write touched."""
        new = {}
        for group, columns in GROUPS:
            values = self.new.get(group) or up(group, self.old[group])
            new.update((c, values[c]) for c in columns)
        return tuple(self.old[c] for c in OLD), tuple(new[c] for c in NEW)


def snapshot(conn, new_only=False):
    cols = NEW if new_only else OLD + NEW
    rows = execute(conn, 'SELECT id, %s FROM customers' % ', '.join(cols))
    if new_only:
        return dict((r[0], tuple(r[1:])) for r in rows)
    return dict((r[0], (tuple(r[1:1 + len(OLD)]), tuple(r[1 + len(OLD):]))) for r in rows)


def differences(conn, model, new_only=False):
    """{} when the table holds exactly what the model expects (both shapes, or only the new one after the contract)."""
    found = snapshot(conn, new_only)
    want = dict((k, row.expected()[1] if new_only else row.expected()) for k, row in model.items())
    wrong = sorted(k for k in set(found) | set(want) if found.get(k) != want.get(k))
    return dict((k, dict(found=found.get(k), want=want.get(k))) for k in wrong[:5])


class Writer(threading.Thread):
    """Writes of one application version (``old`` or ``new``) on its own key subset (key % slots == slot)."""

    def __init__(self, db, version, slot, slots, model, seed, lock):
        super().__init__(daemon=True)
        self.db, self.version, self.slot, self.slots = db, version, slot, slots
        self.model, self.lock = model, lock
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.idle = threading.Event()
        self.ops = 0
        self.retries = 0
        self.error = None
        self.next_id = 10 ** 6 + slot
        self.deleted = []

    def attempt(self, conn, sql, args):
        def run():
            with conn.cursor() as cur:
                return cur.execute(sql, args)
        return with_retries(run, self)

    def run(self):
        try:
            conn = self.db.connect()
            while not self.stop.is_set():
                if self.paused.is_set():
                    self.idle.set()
                    time.sleep(0.01)
                    continue
                self.idle.clear()
                self.step(conn)
                self.ops += 1
            conn.close()
        except Exception as exc:  # surfaced by the test
            self.error = exc
        finally:
            self.idle.set()

    def token(self, prefix):
        return '%s%d-%d' % (prefix, self.slot, self.rng.randrange(10 ** 6))

    def old_values(self, row):
        """New old-column values, each different from the row's."""
        values = {}
        while True:
            values['nick'] = ' %s ' % self.token('K').capitalize()
            values['email'] = None if self.rng.random() < 0.2 else '%s@Mail.Org' % self.token('E')
            values['phone'] = None if self.rng.random() < 0.3 else self.token('p')
            values['full_name'] = None if self.rng.random() < 0.2 else '%s %s' % (self.token('F'), self.token('L'))
            values['n'] = self.rng.randrange(10 ** 6)
            if row is None or all(values[c] != row.old[c] for c in OLD):
                return values

    def new_values(self):
        """New new-column values: never a default, never what up() of any old value gives."""
        return {'handle': self.token('h'), 'email_lc': '%s@new.org' % self.token('e'), 'phone2': self.token('q'),
                'first_name': self.token('f'), 'last_name': None if self.rng.random() < 0.3 else self.token('l'),
                'n64': 10 ** 9 + self.rng.randrange(10 ** 9)}

    def step(self, conn):
        with self.lock:
            self.step_locked(conn)

    def step_locked(self, conn):
        r = self.rng.random()
        key = self.rng.choice(list(self.model)) if self.model else None
        if r < 0.15 and key is not None:
            self.attempt(conn, 'DELETE FROM customers WHERE id = %s', (key,))
            del self.model[key]
            self.deleted.append(key)
        elif r < 0.35:
            key = self.deleted.pop() if self.deleted and self.rng.random() < 0.5 else self.next_id
            if key == self.next_id:
                self.next_id += self.slots
            self.insert(conn, key)
        elif key is not None:
            self.update(conn, key)

    def insert(self, conn, key):
        if self.version == 'old':
            v = self.old_values(None)
            self.attempt(conn, 'INSERT INTO customers (id, %s) VALUES (%%s, %s)' % (', '.join(OLD), ', '.join(['%s'] * len(OLD))),
                         (key,) + tuple(v[c] for c in OLD))
            row = Row(v, dict((g, up(g, v[g])) for g, _cols in GROUPS))
        else:
            v = self.new_values()
            self.attempt(conn, 'INSERT INTO customers (id, %s) VALUES (%%s, %s)' % (', '.join(NEW), ', '.join(['%s'] * len(NEW))),
                         (key,) + tuple(v[c] for c in NEW))
            old = dict(OLD_DEFAULTS)
            new = {}
            for group, columns in GROUPS:
                values = dict((c, v[c]) for c in columns)
                if all(values[c] == NEW_DEFAULTS[c] for c in columns):
                    new[group] = up(group, old[group])
                else:
                    new[group] = values
                    old[group] = down(group, values)
            row = Row(old, new)
        self.model[key] = row

    def update(self, conn, key):
        row = self.model[key]
        if self.version == 'old':
            v = self.old_values(row)
            self.attempt(conn, 'UPDATE customers SET %s WHERE id = %%s' % ', '.join('%s = %%s' % c for c in OLD),
                         tuple(v[c] for c in OLD) + (key,))
            new = dict((g, up(g, v[g])) for g, _cols in GROUPS)
            updated = Row(v, new)
        else:
            # one group per statement, as a new version changing one field would
            group, columns = self.rng.choice(GROUPS)
            values = self.new_values()
            values = dict((c, values[c]) for c in columns)
            n = self.attempt(conn, 'UPDATE customers SET %s WHERE id = %%s' % ', '.join('%s = %%s' % c for c in columns),
                             tuple(values[c] for c in columns) + (key,))
            assert n == 1, 'key %s vanished' % key
            updated = Row(row.old, row.new)
            updated.new[group] = values
            updated.old[group] = down(group, values)
        self.model[key] = updated


def initial_model(conn):
    """Every existing row as unfilled (before the triggers exist)."""
    rows = execute(conn, 'SELECT id, %s FROM customers' % ', '.join(OLD))
    return dict((r[0], Row(dict(zip(OLD, r[1:])))) for r in rows)


def start_writers(db, model, lock, version, seed, slots=2, slot_base=0, total_slots=4):
    """``slots`` writers of ``version``; ``slot_base`` / ``total_slots`` keep the ids each inserts apart from the others'."""
    writers = [Writer(db, version, slot_base + i, total_slots, model, seed * 10 + i, lock) for i in range(slots)]
    for w in writers:
        w.start()
    return writers


def pause(writers, timeout=10):
    for w in writers:
        w.paused.set()
    for w in writers:
        assert w.idle.wait(timeout), 'writer did not pause'


def resume(writers):
    for w in writers:
        w.paused.clear()


def stop(writers):
    join_writers(writers)
    return sum(w.ops for w in writers)
