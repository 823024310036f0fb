"""Race helpers of the sync tests: tables of the seed's shape, writer threads that keep an exact model of every
acknowledged write, and snapshots to compare with it (used by the integration tests of mysql_trigger_sync under
every server setting they cover).

A writer works on its own key subset (key % slots == slot): inserts, updates incl. to NULL, deletes, re-inserts
of deleted keys and, once ``backward`` is set, writes through the new shape; it retries deadlocks and lock wait
timeouts as an application must.
"""
import os
import random
import signal
import threading
import time

import pymysql

RETRY_CODES = (1205, 1213)

SEED = {
    'id': 2, 'description': 'Move addresses from users into their own table',
    'sync': [{'from': {'table': 'users', 'key': 'id', 'columns': ['address_line_1', 'address_line_2']},
              'to': {'table': 'addresses', 'key': 'user_id', 'columns': ['address_line_1', 'address_line_2']},
              'direction': 'both'}],
}
SAME = {
    'id': 3, 'description': 'Rename items.old_name to items.new_name',
    'sync': [{'from': {'table': 'items', 'key': 'id', 'columns': ['old_name', 'qty']},
              'to': {'table': 'items', 'key': 'id', 'columns': ['new_name', 'quantity']}, 'direction': 'both'}],
}


def with_retries(fn, writer, attempts=50):
    """``fn()``, retried as an application must on a deadlock or a lock wait timeout (counted in ``writer.retries``)."""
    for _attempt in range(attempts):
        try:
            return fn()
        except pymysql.err.OperationalError as exc:
            if exc.args[0] in RETRY_CODES:
                writer.retries += 1
                time.sleep(0.002)
                continue
            raise
    raise AssertionError('writer gave up after %d retries' % attempts)


def kill_when(proc, args_path, reached, timeout=60):
    """While the module process ``proc`` (zdt_lab.modules.start_module) runs, poll ``reached()`` until it is true, then
    kill -9 the process; its args file is removed either way."""
    try:
        deadline = time.time() + timeout
        while not reached():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, 'the module never reached the point to kill it at'
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.unlink(args_path)


def wait_lock_released(conn, name, timeout=5):
    """Until the server noticed a killed client: its named lock is released with its connection."""
    deadline = time.time() + timeout
    while execute(conn, 'SELECT IS_USED_LOCK(%s)', (name,))[0][0] is not None:
        assert time.time() < deadline, 'lock %s is still held' % name
        time.sleep(0.05)


def execute(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def create_users(conn, rows, users='users', addresses='addresses', c1='address_line_1', c2='address_line_2', autoinc=True):
    execute(conn, 'CREATE TABLE `%s` (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100), `%s` VARCHAR(100), `%s` VARCHAR(100))'
            % (users, c1, c2))
    if rows:
        execute(conn, "INSERT INTO `%s` (id, name, `%s`, `%s`) SELECT seq, CONCAT('user', seq), IF(seq %% 5 = 0, NULL, CONCAT(seq, ' Main St')), "
                      "IF(seq %% 3 = 0, NULL, CONCAT('Apt ', seq)) FROM seq_1_to_%d" % (users, c1, c2, rows))
    if not autoinc:
        # keyed by user_id, no AUTO_INCREMENT column: the backfill takes its 'select' strategy
        execute(conn, 'CREATE TABLE `%s` (user_id INT NOT NULL PRIMARY KEY, `%s` VARCHAR(100), `%s` VARCHAR(100), '
                      'CONSTRAINT `%s_fk` FOREIGN KEY (user_id) REFERENCES `%s` (id) ON DELETE CASCADE)'
                % (addresses, c1, c2, addresses, users))
        return
    execute(conn, 'CREATE TABLE `%s` (id INT AUTO_INCREMENT PRIMARY KEY, user_id INT NOT NULL, `%s` VARCHAR(100), `%s` VARCHAR(100), '
                  'UNIQUE KEY `%s_uid` (user_id), CONSTRAINT `%s_fk` FOREIGN KEY (user_id) REFERENCES `%s` (id) ON DELETE CASCADE)'
            % (addresses, c1, c2, addresses, addresses, users))


def create_items(conn, rows):
    execute(conn, 'CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, old_name VARCHAR(50), qty INT, new_name VARCHAR(50), quantity INT)')
    execute(conn, "INSERT INTO items (id, old_name, qty) SELECT seq, IF(seq %% 7 = 0, NULL, CONCAT('item', seq)), seq %% 11 FROM seq_1_to_%d" % rows)


def snapshot_cross(conn):
    users = dict((r[0], (r[1], r[2])) for r in execute(conn, 'SELECT id, address_line_1, address_line_2 FROM users'))
    addrs = dict((r[0], (r[1], r[2])) for r in execute(conn, 'SELECT user_id, address_line_1, address_line_2 FROM addresses'))
    return users, addrs


def expected_addresses(users):
    return dict((k, v) for k, v in users.items() if v != (None, None))


# ------------------------------------------------------------------------------------------ writers

class Writer(threading.Thread):
    """Random writes on its own key subset; keeps the exact expected old-shape state of its keys."""

    def __init__(self, db, slot, slots, model, kind, seed, backward):
        super().__init__(daemon=True)
        self.db, self.slot, self.slots, self.kind = db, slot, slots, kind
        self.model = model          # key -> tuple of values, only keys of this writer
        self.deleted = []
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.backward = backward    # Event: the new shape may be written (triggers exist)
        self.ops = 0
        self.retries = 0
        self.error = None
        self.next_id = 10 ** 6 + slot

    def value(self, prefix, null_ratio=0.25):
        if self.rng.random() < null_ratio:
            return None
        return '%s-%d-%d' % (prefix, self.slot, self.rng.randrange(10 ** 6))

    def attempt(self, conn, fn):
        return with_retries(lambda: fn(conn), self)

    def run(self):
        try:
            conn = self.db.connect()
            while not self.stop.is_set() and self.ops < 200000:
                self.step(conn)
                self.ops += 1
            conn.close()
        except Exception as exc:  # surfaced by the test
            self.error = exc

    def pick(self):
        return self.rng.choice(list(self.model)) if self.model else None

    def step(self, conn):
        if self.kind == 'cross':
            self.step_cross(conn)
        else:
            self.step_same(conn)

    def step_cross(self, conn):
        r = self.rng.random()
        key = self.pick()
        back = self.backward.is_set()
        if r < 0.35 and key is not None:
            v = (self.value('L1', 0.3), self.value('L2', 0.4))
            self.attempt(conn, lambda c: execute(c, 'UPDATE users SET address_line_1 = %s, address_line_2 = %s WHERE id = %s', v + (key,)))
            self.model[key] = v
        elif r < 0.45 and key is not None:
            self.attempt(conn, lambda c: execute(c, 'DELETE FROM users WHERE id = %s', (key,)))
            del self.model[key]
            self.deleted.append(key)
        elif r < 0.55:
            if self.deleted and self.rng.random() < 0.6:
                key = self.deleted.pop(self.rng.randrange(len(self.deleted)))
            else:
                key = self.next_id
                self.next_id += self.slots
            v = (self.value('I1'), self.value('I2'))
            self.attempt(conn, lambda c: execute(c, 'INSERT INTO users (id, name, address_line_1, address_line_2) VALUES (%s, %s, %s, %s)',
                                                 (key, 'w', v[0], v[1])))
            self.model[key] = v
        elif back and r < 0.75 and key is not None:
            if self.model[key] != (None, None):
                v = (self.value('B1', 0.0), self.value('B2', 0.5))
                n = self.attempt(conn, lambda c: c.cursor().execute(
                    'UPDATE addresses SET address_line_1 = %s, address_line_2 = %s WHERE user_id = %s', v + (key,)))
                if n == 0:
                    return   # not copied yet: the new version sees no address and changed nothing
            else:
                v = (self.value('N1', 0.0), self.value('N2', 0.5))
                self.attempt(conn, lambda c: execute(c, 'INSERT INTO addresses (user_id, address_line_1, address_line_2) VALUES (%s, %s, %s)',
                                                     (key,) + v))
            self.model[key] = v
        elif back and r < 0.85 and key is not None:
            n = self.attempt(conn, lambda c: c.cursor().execute('DELETE FROM addresses WHERE user_id = %s', (key,)))
            if n:
                self.model[key] = (None, None)
        elif key is not None:
            # an update that touches no synced column
            self.attempt(conn, lambda c: execute(c, 'UPDATE users SET name = %s WHERE id = %s', ('n%d' % self.ops, key)))

    def step_same(self, conn):
        r = self.rng.random()
        key = self.pick()
        back = self.backward.is_set()
        v = (self.value('nm', 0.2), self.rng.choice([None, self.rng.randrange(1000)]))
        if r < 0.35 and key is not None:
            self.attempt(conn, lambda c: execute(c, 'UPDATE items SET old_name = %s, qty = %s WHERE id = %s', v + (key,)))
        elif back and r < 0.6 and key is not None:
            # v2 writes non-NULL values: on a row the backfill has not reached yet, writing NULL into the
            # (still NULL) new column is not a change the trigger can see (documented limitation)
            v = (self.value('nn', 0.0), self.rng.randrange(1000))
            self.attempt(conn, lambda c: execute(c, 'UPDATE items SET new_name = %s, quantity = %s WHERE id = %s', v + (key,)))
        elif r < 0.7 and key is not None:
            self.attempt(conn, lambda c: execute(c, 'DELETE FROM items WHERE id = %s', (key,)))
            del self.model[key]
            self.deleted.append(key)
            return
        elif r < 0.85:
            if self.deleted and self.rng.random() < 0.6:
                key = self.deleted.pop(self.rng.randrange(len(self.deleted)))
            else:
                key = self.next_id
                self.next_id += self.slots
            if back and self.rng.random() < 0.5:
                self.attempt(conn, lambda c: execute(c, 'INSERT INTO items (id, new_name, quantity) VALUES (%s, %s, %s)', (key,) + v))
            else:
                self.attempt(conn, lambda c: execute(c, 'INSERT INTO items (id, old_name, qty) VALUES (%s, %s, %s)', (key,) + v))
        else:
            return
        self.model[key] = v


def start_writers(db, initial, kind, seed, backward, slots=2):
    writers = []
    for slot in range(slots):
        model = dict((k, v) for k, v in initial.items() if k % slots == slot)
        w = Writer(db, slot, slots, model, kind, seed * 10 + slot, backward)
        w.start()
        writers.append(w)
    return writers


def join_writers(writers):
    """Stop writer threads (each with ``stop`` and ``error``); AssertionError naming the first that failed."""
    for w in writers:
        w.stop.set()
    for w in writers:
        w.join(30)
    for w in writers:
        assert w.error is None, 'writer failed: %r' % (w.error,)


def stop_writers(writers):
    join_writers(writers)
    merged = {}
    for w in writers:
        merged.update(w.model)
    return merged


def cross_race(db, sync, autoinc=True, seed=0, module_path=False, rows=10000, slots=2, **sync_args):
    """Writers race a cross-table sync of the seed's shape on ``rows`` users; returns (sync's result, model, ops).

    Two-step (default): the forward triggers first, then writes through the new shape start, then ``sync`` again
    does the backfill (tiny chunks: chunk boundaries race often), the backward triggers and verify.  ``module_path``:
    one ``sync`` call as the module runs it, the new shape written only after it (as the new version would).
    ``sync`` is sync_runner.sync_present or a wrapper of it; ``sync_args`` go to the backfilling call.
    """
    conn = db.connect()
    create_users(conn, rows, autoinc=autoinc)
    initial = snapshot_cross(conn)[0]
    backward = threading.Event()
    writers = start_writers(db, initial, 'cross', seed, backward, slots=slots)
    args = dict(dict(chunk_size=50, chunk_time=0.005), **sync_args)
    try:
        time.sleep(0.2)
        if not module_path:
            sync(db.connect(), db.name, SEED, backfill=False, verify=False)
            backward.set()
            time.sleep(0.2)
        result = sync(db.connect(), db.name, SEED, **args)
        backward.set()
        time.sleep(0.3)
    finally:
        model = stop_writers(writers)
    return result, model, sum(w.ops for w in writers)


def cross_differences(conn, model):
    """What the database holds against the writers' model: {} when both shapes hold exactly every acknowledged write."""
    users, addrs = snapshot_cross(conn)
    expected = expected_addresses(model)
    found = dict(old_shape_lost=sorted(k for k in set(users) | set(model) if users.get(k) != model.get(k))[:10],
                 missing=sorted(set(expected) - set(addrs))[:10], extra=sorted(set(addrs) - set(expected))[:10],
                 stale=sorted(k for k in addrs if k in expected and addrs[k] != expected[k])[:10])
    return dict((k, v) for k, v in found.items() if v)
