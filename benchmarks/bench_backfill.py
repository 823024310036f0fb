"""Benchmark the trigger-sync backfill against a bare INSERT ... SELECT and pt-online-schema-change.

Everything runs in one private sandbox MariaDB (own root dir, free port) in one run, so the ratios
compare like with like on this noisy machine:

1. ``users`` with --rows rows (default 1,000,000) and the seed migration's ``addresses`` table
   (AUTO_INCREMENT id, UNIQUE(user_id), FK -> users ON DELETE CASCADE).
2. A steady application writer (--rate writes/s on ``users``: updates, inserts, deletes; each a
   single autocommit statement, latency measured client-side) runs during each of:
   a. pt-online-schema-change on ``users`` (a no-op rebuild ``ENGINE=InnoDB``: it copies the same
      1M rows in chunks with its own triggers for concurrent writes; done before ``addresses``
      references ``users``, since pt-osc refuses an FK-referenced table). Its target has only a
      primary key.
   b. bare ``INSERT INTO addresses ... SELECT ... FROM users`` (one statement, UNIQUE + FK target),
      and the same bare copy into a primary-key-only copy of ``users`` (pt-osc's kind of target).
   c. our backfill: mysql_trigger_sync's triggers + chunked backfill (chunk_time 0.5 s) into
      ``addresses``; verify timed separately after it.
3. Exactness after the writer stopped: verify (chunked checksums) plus an independent anti-join
   count of differing rows in both directions; and the AUTO_INCREMENT ids used for ``addresses``'
   rows (a trigger upsert that finds its row still uses one up).
4. The same sync into ``addresses_noai`` (user_id PRIMARY KEY + FK, no AUTO_INCREMENT column), where
   the backfill can use a locking INSERT ... SELECT; again with the writer, bare copy and exactness.
5. Single-row write throughput: the same statements (printed) on the same data with no trigger, with
   minimal one-way triggers (the cost of writing the second row by itself) and with ours; interleaved,
   median of --tp-reps; as server-side loops (no round trip or parse: the pure extra work shows) and as
   one autocommit statement per client round trip over TCP (the application's view); each with
   innodb_flush_log_at_trx_commit=2 (the sandbox's) and =1 (durable).

Steps 2-4 run as --rounds interleaved rounds (default 3) with the writer running throughout; the
medians and the median of each round's ratio are printed.  The machine is shared and noisy (the same
copy varies by a third between minutes): compare ratios from the same run, and run it more than once.

Two more scenarios (``--scenario``), each with the same users, writer and migration:

* ``replica``: the primary logs in binary (ROW) and a MariaDB replica follows it (GTID over loopback).
  Per round: our copy with the replica in ``replicas`` and ``max_replica_lag`` (--max-replica-lag,
  default 1 s), our copy without it, and the bare copy (--replica-lock-mode: the primary's
  ``innodb_autoinc_lock_mode``, default 1: the values copy; 2: the insert copy).  Printed: copy rate, the module's throttled
  seconds and largest lag seen, the replica's lag p50/p99/max measured by zdt_lab.replica_lag (its own
  20 ms heartbeat, sampled every 50 ms, from the copy's start until the replica has caught up with it)
  against "the limit + one chunk" (max_replica_lag + the copy's longest chunk), and the writer's view.
* ``lock-modes``: a server per ``innodb_autoinc_lock_mode`` (--lock-modes, default 1,2; no binary log).
  Per round, into the seed's ``addresses`` (AUTO_INCREMENT id): the bare copy, then our ``values``,
  ``insert`` and ``select`` copies, each forced (the module takes ``values`` under lock mode 1 and
  ``insert`` under lock mode 2); each one's time against the bare copy of the same round, the
  writer's p99 and errors during it, and the anti-join count of rows that differ from the old shape
  afterwards (exactness).

* ``alter-column``: an ``alter_column`` rename with an ``up`` transform on ``users`` itself
  (``address_line_1`` -> ``street`` VARCHAR(120), ``up: UPPER(address_line_1)``, ``down: street``: the column the
  writer updates).  Per round, each with the writer running and the new column added afresh: our same-table
  triggers + backfill (expand, then mysql_trigger_sync without verify, timed: trigger creation and copy), a bare
  chunked ``UPDATE users SET street = UPPER(address_line_1)`` over the same key ranges (no triggers: the floor, not
  exact under writes), and the server's own online ways: ``ADD COLUMN ... AS (UPPER(address_line_1)) STORED`` with
  ``ALGORITHM=INPLACE, LOCK=NONE`` (what the server says when it cannot) and an in-place rebuild of the table
  (``ENGINE=InnoDB, ALGORITHM=INPLACE, LOCK=NONE``: what copying every row in place costs).  Printed: seconds,
  rows/s, ours against the bare UPDATE, the writer's p50/p99/max and errors, and the rows not in sync right after ours.

Usage: .venv/bin/python benchmarks/bench_backfill.py [--scenario default|replica|lock-modes|alter-column] [--rows 1000000] [--rate 1000]
       [--root DIR]
"""
import argparse
import os
import re
import shutil
import subprocess
import threading
import time

import pymysql
from zdt_lab import REPO_ROOT
from zdt_lab.replica_lag import LagMonitor
from zdt_lab.sandbox import Sandbox
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_replicas import replicas_from_params
from ansible_collections.zdt.bluegreen.plugins.module_utils.schema_apply import apply_phase
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_runner import sync_absent, sync_present
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_inspect import inspect_all
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_verify import Verifier
from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_backfill as backfill_mod

MIGRATION = os.path.join(REPO_ROOT, 'sample', 'migrations', '002_addresses.yml')
DB = 'bench_backfill'


def q(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def pct(values, p):
    if not values:
        return float('nan')
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


class AppWriter(object):
    """Rate-limited single-row writes on users from `threads` connections; latencies per phase."""

    def __init__(self, server, rate, max_user_id, threads=2):
        self.server, self.rate, self.max_id, self.threads = server, rate, max_user_id, threads
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.phase = 'idle'
        self.lat = {}
        self.errors = {}
        self.counts = {}
        self.started = {}
        self.workers = []

    def set_phase(self, name):
        with self.lock:
            self.phase = name
            self.lat.setdefault(name, [])
            self.errors.setdefault(name, {})
            self.counts.setdefault(name, 0)
            self.started[name] = time.time()

    def phase_stats(self, name, seconds):
        lat = self.lat.get(name, [])
        errs = self.errors.get(name, {})
        return dict(writes=len(lat), per_second=len(lat) / seconds if seconds else 0, p50_ms=pct(lat, 50) * 1000,
                    p99_ms=pct(lat, 99) * 1000, max_ms=(max(lat) * 1000 if lat else float('nan')), errors=sum(errs.values()),
                    error_codes=dict(errs))

    def worker(self, idx):
        import random
        rng = random.Random(idx)
        conn = self.server.root_connect(DB)
        interval = self.threads / float(self.rate)
        nxt = time.time()
        own = []
        next_id = 50 * 10 ** 6 + idx
        i = 0
        while not self.stop.is_set():
            nxt += interval
            delay = nxt - time.time()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.05:
                nxt = time.time()   # fell behind (blocked): do not burst to catch up
            r = rng.random()
            i += 1
            if r < 0.7:
                key = rng.randrange(1, self.max_id + 1)
                a1 = None if rng.random() < 0.05 else 'upd %d' % i
                sql, args = 'UPDATE users SET address_line_1 = %s, address_line_2 = %s WHERE id = %s', (a1, 'w%d' % idx, key)
            elif r < 0.85 or not own:
                sql, args = 'INSERT INTO users (id, name, address_line_1) VALUES (%s, %s, %s)', (next_id, 'bench', 'new %d' % i)
                own.append(next_id)
                next_id += self.threads
            else:
                sql, args = 'DELETE FROM users WHERE id = %s', (own.pop(rng.randrange(len(own))),)
            t0 = time.time()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, args)
                ok = True
            except pymysql.err.MySQLError as exc:
                ok = False
                code = exc.args[0] if exc.args else 0
            else:
                code = None
            dt = time.time() - t0
            with self.lock:
                if ok:
                    self.lat[self.phase].append(dt)
                else:
                    self.errors[self.phase][code] = self.errors[self.phase].get(code, 0) + 1
        conn.close()

    def start(self):
        self.set_phase('idle')
        for i in range(self.threads):
            t = threading.Thread(target=self.worker, args=(i,), daemon=True)
            t.start()
            self.workers.append(t)

    def finish(self):
        self.stop.set()
        for t in self.workers:
            t.join(30)


def create_schema(conn, rows):
    q(conn, 'CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100), email VARCHAR(255), '
            'address_line_1 VARCHAR(100), address_line_2 VARCHAR(100))')
    step = 200000
    for lo in range(1, rows + 1, step):
        hi = min(rows, lo + step - 1)
        q(conn, "INSERT INTO users (id, name, email, address_line_1, address_line_2) SELECT seq, CONCAT('user', seq), "
                "CONCAT('user', seq, '@example.com'), IF(seq %% 10 = 0, NULL, CONCAT(seq, ' Main Street')), "
                "IF(seq %% 3 = 0, NULL, CONCAT('Apt ', seq %% 500)) FROM seq_%d_to_%d" % (lo, hi))


def create_addresses(conn):
    q(conn, 'CREATE TABLE addresses (id INT NOT NULL AUTO_INCREMENT, user_id INT NOT NULL, address_line_1 VARCHAR(100), '
            'address_line_2 VARCHAR(100), PRIMARY KEY (id), UNIQUE KEY addresses_user_id (user_id), '
            'CONSTRAINT addresses_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE)')


def write_throughput(conn, n, label):
    """Server-side loops (no client round trips): ops/s for single-row UPDATE, INSERT and DELETE on users."""
    q(conn, 'DROP PROCEDURE IF EXISTS zdt_bench_upd')
    q(conn, 'DROP PROCEDURE IF EXISTS zdt_bench_ins')
    q(conn, 'DROP PROCEDURE IF EXISTS zdt_bench_del')
    q(conn, "CREATE PROCEDURE zdt_bench_upd(n INT, m INT) BEGIN DECLARE i INT DEFAULT 0; WHILE i < n DO "
            "UPDATE users SET address_line_1 = CONCAT('tp', i, '%s') WHERE id = 1 + (i * 7919) %% m; SET i = i + 1; END WHILE; END" % label)
    q(conn, "CREATE PROCEDURE zdt_bench_ins(n INT) BEGIN DECLARE i INT DEFAULT 0; WHILE i < n DO "
            "INSERT INTO users (id, name, address_line_1) VALUES (90000000 + i, 'tp', CONCAT('tp', i)); SET i = i + 1; END WHILE; END")
    q(conn, "CREATE PROCEDURE zdt_bench_del(n INT) BEGIN DECLARE i INT DEFAULT 0; WHILE i < n DO "
            "DELETE FROM users WHERE id = 90000000 + i; SET i = i + 1; END WHILE; END")
    m = q(conn, 'SELECT MAX(id) FROM users WHERE id < 50000000')[0][0]
    out = {}
    STATEMENTS.update(update="UPDATE users SET address_line_1 = CONCAT('tp', i, <label>) WHERE id = 1 + (i * 7919) %% %d" % m,
                      insert="INSERT INTO users (id, name, address_line_1) VALUES (90000000 + i, 'tp', CONCAT('tp', i))",
                      delete='DELETE FROM users WHERE id = 90000000 + i')
    for name, call in (('update', 'CALL zdt_bench_upd(%d, %d)' % (n, m)), ('insert', 'CALL zdt_bench_ins(%d)' % n),
                       ('delete', 'CALL zdt_bench_del(%d)' % n)):
        t0 = time.time()
        q(conn, call)
        out[name] = n / (time.time() - t0)
    for p in ('upd', 'ins', 'del'):
        q(conn, 'DROP PROCEDURE zdt_bench_%s' % p)
    return out


STATEMENTS = {}

MINIMAL_TRIGGERS = [
    # what a second row write costs by itself: one-way, no guard, no change detection, no backward triggers
    'CREATE TRIGGER zdt_bench_min_upd AFTER UPDATE ON users FOR EACH ROW UPDATE addresses SET address_line_1 = NEW.address_line_1, '
    'address_line_2 = NEW.address_line_2 WHERE user_id = NEW.id',
    'CREATE TRIGGER zdt_bench_min_ins AFTER INSERT ON users FOR EACH ROW INSERT INTO addresses (user_id, address_line_1, address_line_2) '
    'VALUES (NEW.id, NEW.address_line_1, NEW.address_line_2) ON DUPLICATE KEY UPDATE address_line_1 = NEW.address_line_1, '
    'address_line_2 = NEW.address_line_2',
]


def client_throughput(server, n, label):
    """The same statements as write_throughput, one autocommit statement per client round trip over TCP (the application's view)."""
    conn = server.app_connect(DB)
    m = q(conn, 'SELECT MAX(id) FROM users WHERE id < 50000000')[0][0]
    out = {}
    with conn.cursor() as cur:
        t0 = time.time()
        for i in range(n):
            cur.execute("UPDATE users SET address_line_1 = CONCAT('tp', %s, %s) WHERE id = 1 + (%s * 7919) %% %s", (i, label, i, m))
        out['update'] = n / (time.time() - t0)
        t0 = time.time()
        for i in range(n):
            cur.execute("INSERT INTO users (id, name, address_line_1) VALUES (%s, 'tp', CONCAT('tp', %s))", (80000000 + i, i))
        out['insert'] = n / (time.time() - t0)
        t0 = time.time()
        for i in range(n):
            cur.execute('DELETE FROM users WHERE id = %s', (80000000 + i,))
        out['delete'] = n / (time.time() - t0)
    conn.close()
    return out


def run_ptosc(mariadb, writer):
    tool = shutil.which('pt-online-schema-change')
    if not tool:
        return None
    dsn = 'S=%s,u=root,D=%s,t=users' % (mariadb.socket, DB)
    argv = [tool, '--execute', '--alter', 'ENGINE=InnoDB', '--chunk-time', '0.5', '--recursion-method', 'none',
            '--no-check-replication-filters', '--max-load', 'Threads_running=25', '--critical-load', 'Threads_running=200',
            '--set-vars', 'lock_wait_timeout=5', '--progress', 'time,1', dsn]
    writer.set_phase('pt-osc')
    t0 = time.time()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1800, check=False)
    total = time.time() - t0
    out = proc.stdout.decode(errors='replace')
    if proc.returncode != 0:
        print('pt-online-schema-change failed (rc=%d):\n%s' % (proc.returncode, out[-2000:]))
        return None
    copy = None
    stamps = re.findall(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) (Copying approximately|Copied rows OK)', out, re.M)
    if len(stamps) >= 2:
        import datetime
        fmt = '%Y-%m-%dT%H:%M:%S'
        copy = (datetime.datetime.strptime(stamps[-1][0], fmt) - datetime.datetime.strptime(stamps[0][0], fmt)).total_seconds()
    return dict(total=total, copy=copy)


def diff_count(conn, table='addresses'):
    a = q(conn, 'SELECT COUNT(*) FROM users u LEFT JOIN %s a ON a.user_id = u.id '
                'WHERE (u.address_line_1 IS NOT NULL OR u.address_line_2 IS NOT NULL) '
                'AND (a.user_id IS NULL OR NOT (BINARY a.address_line_1 <=> BINARY u.address_line_1 '
                'AND BINARY a.address_line_2 <=> BINARY u.address_line_2))' % table)[0][0]
    b = q(conn, 'SELECT COUNT(*) FROM %s a LEFT JOIN users u ON u.id = a.user_id '
                'WHERE u.id IS NULL OR (u.address_line_1 IS NULL AND u.address_line_2 IS NULL)' % table)[0][0]
    return int(a) + int(b)


# The same sync into a target keyed by user_id without an AUTO_INCREMENT column: no AUTO-INC lock can be
# involved, so the backfill copies with a locking INSERT ... SELECT (strategy 'select').
NOAI_MIGRATION = {
    'id': 9, 'description': 'bench: the seed sync into a target without AUTO_INCREMENT',
    'sync': [{'from': {'table': 'users', 'key': 'id', 'columns': ['address_line_1', 'address_line_2']},
              'to': {'table': 'addresses_noai', 'key': 'user_id', 'columns': ['address_line_1', 'address_line_2']},
              'direction': 'both'}],
}


def create_addresses_noai(conn):
    q(conn, 'CREATE TABLE addresses_noai (user_id INT NOT NULL, address_line_1 VARCHAR(100), address_line_2 VARCHAR(100), '
            'PRIMARY KEY (user_id), CONSTRAINT addresses_noai_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE)')


BARE_COPY = ('INSERT INTO %s SELECT id, address_line_1, address_line_2 FROM users '
             'WHERE address_line_1 IS NOT NULL OR address_line_2 IS NOT NULL')


def median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def copy_round(db, conn, writer, args, mig, mig_noai, phases):
    """One interleaved round of every copy, the app writer running throughout; returns its figures."""
    out = {}

    def timed(kind, fn):
        writer.set_phase(kind)
        t0 = time.time()
        value = fn()
        dt = time.time() - t0
        phases[kind] = phases.get(kind, 0.0) + dt
        writer.set_phase('between')
        return dt, value

    q(conn, 'DROP TABLE IF EXISTS addresses')
    q(conn, 'DROP TABLE IF EXISTS addresses_noai')
    if not args.skip_ptosc:
        # pt-osc refuses a table that another table's foreign key references: it runs before addresses exists
        dt, pt = timed('pt-osc', lambda: run_ptosc(db, writer))
        out['ptosc'] = pt and dict(pt, total=dt)
    create_addresses(conn)
    out['bare'] = timed('bare', lambda: q(conn, BARE_COPY % 'addresses (user_id, address_line_1, address_line_2)'))[0]
    q(conn, 'TRUNCATE TABLE addresses')
    q(conn, 'CREATE TABLE users_pkonly LIKE users')
    out['bare_pk'] = timed('bare-pk', lambda: q(conn, 'INSERT INTO users_pkonly SELECT * FROM users'))[0]
    q(conn, 'DROP TABLE users_pkonly')
    out['rows'] = q(conn, 'SELECT COUNT(*) FROM users')[0][0]
    res = timed('ours', lambda: sync_present(db.root_connect(DB), DB, mig, verify=False, chunk_time=args.chunk_time,
                                             strategy=None if args.strategy == 'auto' else args.strategy))[1]
    out['ours'] = res['entries'][0]['backfill']
    t0 = time.time()
    out['verify'] = Verifier(db.root_connect(DB), inspect_all(conn, DB, mig)[0]).run()
    out['verify_s'] = time.time() - t0
    out['diff'] = diff_count(conn)
    # the triggers' upserts that find their row still use up an AUTO_INCREMENT id each: how many went that way
    out['ids'] = (q(conn, 'SELECT AUTO_INCREMENT - 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s',
                    (DB, 'addresses'))[0][0], q(conn, 'SELECT COUNT(*) FROM addresses')[0][0])
    sync_absent(db.root_connect(DB), DB, mig)
    if not args.skip_noai:
        create_addresses_noai(conn)
        out['bare_noai'] = timed('bare-noai', lambda: q(conn, BARE_COPY % 'addresses_noai'))[0]
        q(conn, 'TRUNCATE TABLE addresses_noai')
        res2 = timed('ours-noai', lambda: sync_present(db.root_connect(DB), DB, mig_noai, verify=False, chunk_time=args.chunk_time))[1]
        out['ours_noai'] = res2['entries'][0]['backfill']
        out['verify_noai'] = Verifier(db.root_connect(DB), inspect_all(conn, DB, mig_noai)[0]).run()
        out['diff_noai'] = diff_count(conn, 'addresses_noai')
        sync_absent(db.root_connect(DB), DB, mig_noai)
    return out


def ours_line(rounds, key, seconds, rows_per_second):
    # a chunk groups slices for throttling and progress; a slice is one transaction (what holds the app's rows)
    return ('ours: triggers + backfill (strategy %s):      %6.2fs  %9.0f rows/s  (over all rounds: max chunk %.3fs, max slice %.3fs)'
            % (rounds[0][key]['strategy'], seconds, rows_per_second, max(r[key]['max_chunk_seconds'] for r in rounds),
               max(r[key]['max_slice_seconds'] for r in rounds)))


def print_copy_speed(rounds, args):
    print()
    print('== copy speed (%d users; app writer at %d writes/s through every copy; %d interleaved rounds, the median '
          'of each figure and of each round\'s ratio)' % (args.rows, args.rate, len(rounds)))
    print('round  bare(UNIQUE+FK)  bare(PK-only)   pt-osc   ours(%s)  bare(noai)  ours(noai, %s)   rows/s'
          % (rounds[0]['ours']['strategy'], rounds[0].get('ours_noai', {}).get('strategy', '-')))
    for i, r in enumerate(rounds, start=1):
        pt = r.get('ptosc')
        print('%5d  %14.2fs  %12.2fs  %7ss  %9.2fs  %9ss  %14ss' % (
            i, r['bare'], r['bare_pk'], '%.2f' % pt['total'] if pt else '-', r['ours']['seconds'],
            '%.2f' % r['bare_noai'] if 'bare_noai' in r else '-', '%.2f' % r['ours_noai']['seconds'] if 'ours_noai' in r else '-'))
    n = rounds[0]['ours']['rows_total']

    def rate(seconds):
        return n / seconds if seconds else float('nan')

    med = dict((k, median([r.get(k) for r in rounds if r.get(k) is not None])) for k in ('bare', 'bare_pk', 'bare_noai'))
    ours = median([r['ours']['seconds'] for r in rounds])
    print('bare INSERT...SELECT into addresses (UNIQUE+FK): %6.2fs  %9.0f rows/s' % (med['bare'], rate(med['bare'])))
    print('bare INSERT...SELECT into PK-only copy of users: %6.2fs  %9.0f rows/s' % (med['bare_pk'], args.rows / med['bare_pk']))
    pts = [r['ptosc'] for r in rounds if r.get('ptosc')]
    if pts:
        pt_total = median([p['total'] for p in pts])
        print('pt-online-schema-change users (total):           %6.2fs  %9.0f rows/s' % (pt_total, args.rows / pt_total))
    print(ours_line(rounds, 'ours', ours, rate(ours)))
    print('ours: verify (chunked checksums):                %6.2fs  mismatches %s; independent anti-join diff count %s'
          % (median([r['verify_s'] for r in rounds]), [r['verify']['mismatches'] for r in rounds], [r['diff'] for r in rounds]))
    print('ours: AUTO_INCREMENT ids used for the rows of addresses, per round: %s'
          % ', '.join('%d for %d' % r['ids'] for r in rounds))
    ratio_bare = median([r['bare'] / r['ours']['seconds'] for r in rounds])
    print('ratio ours / bare INSERT...SELECT (same target): %.2f  (rounds: %s)'
          % (ratio_bare, ', '.join('%.2f' % (r['bare'] / r['ours']['seconds']) for r in rounds)))
    if pts:
        ratios = [(r['ptosc']['total'] / args.rows) / (r['ours']['seconds'] / n) for r in rounds if r.get('ptosc')]
        print('ratio ours / pt-osc (total):                     %.2f  (rounds: %s)' % (median(ratios), ', '.join('%.2f' % x for x in ratios)))
        print('  (pt-osc rebuilds users into a primary-key-only table, ours fills a table with UNIQUE + FK: bare INSERT...SELECT '
              'into the two kinds of target took %.2fs vs %.2fs)' % (med['bare_pk'], med['bare']))
    if 'ours_noai' in rounds[0]:
        o2 = median([r['ours_noai']['seconds'] for r in rounds])
        print('-- the same sync into addresses_noai (user_id PRIMARY KEY + FK, no AUTO_INCREMENT column):')
        print('bare INSERT...SELECT into addresses_noai:          %6.2fs  %9.0f rows/s' % (med['bare_noai'], rate(med['bare_noai'])))
        print(ours_line(rounds, 'ours_noai', o2, rate(o2)))
        print('verify mismatches %s, independent anti-join diff count %s'
              % ([r['verify_noai']['mismatches'] for r in rounds], [r['diff_noai'] for r in rounds]))
        ratios = [r['bare_noai'] / r['ours_noai']['seconds'] for r in rounds]
        print('ratio ours / bare INSERT...SELECT (same target): %.2f  (rounds: %s)' % (median(ratios), ', '.join('%.2f' % x for x in ratios)))
        if pts:
            ratios = [(r['ptosc']['total'] / args.rows) / (r['ours_noai']['seconds'] / n) for r in rounds if r.get('ptosc')]
            print('ratio ours / pt-osc (total):                     %.2f  (rounds: %s)' % (median(ratios), ', '.join('%.2f' % x for x in ratios)))


def trigger_throughput(db, conn, mig, args):
    """Single-row write throughput with no trigger, minimal triggers and ours: [(flush, how, ops, medians)]."""
    q(conn, 'DROP TABLE IF EXISTS addresses_noai')
    # trigger cost: the same statements on the same data, interleaved (none / minimal / ours) so machine
    # noise hits every variant alike; median of --tp-reps.  Two ways of issuing them: server-side loops
    # (a stored procedure: no round trip or parse, so the pure extra work of the triggers shows) and one
    # autocommit statement per client round trip over TCP (what an application sees).  Each once with the
    # sandbox's innodb_flush_log_at_trx_commit=2 and once with =1 (MariaDB's durable default).
    flush_before = q(conn, 'SELECT @@GLOBAL.innodb_flush_log_at_trx_commit')[0][0]

    def setup(variant):
        if variant == 'ours':
            sync_present(db.root_connect(DB), DB, mig, backfill=False, verify=False)
        elif variant == 'minimal':
            for sql in MINIMAL_TRIGGERS:
                q(conn, sql)

    def teardown(variant):
        if variant == 'ours':
            sync_absent(db.root_connect(DB), DB, mig)
        elif variant == 'minimal':
            q(conn, 'DROP TRIGGER zdt_bench_min_upd')
            q(conn, 'DROP TRIGGER zdt_bench_min_ins')

    tp = []
    for flush in (flush_before, 1):
        q(conn, 'SET GLOBAL innodb_flush_log_at_trx_commit = %s', (flush,))
        for how, ops in (('server-side loop', args.tp_ops if flush != 1 else args.tp_ops_durable), ('client round trips', args.tp_ops_client)):
            got = {}
            for rep in range(args.tp_reps):
                for variant in ('none', 'minimal', 'ours'):
                    setup(variant)
                    label = '%s%d%s' % (variant[0], rep, flush)
                    res_tp = write_throughput(conn, ops, label) if how.startswith('server') else client_throughput(db, ops, label)
                    teardown(variant)
                    for k, v in res_tp.items():
                        got.setdefault(variant, {}).setdefault(k, []).append(v)
            med = dict((variant, dict((k, sorted(v)[len(v) // 2]) for k, v in ops_.items())) for variant, ops_ in got.items())
            tp.append((flush, how, ops, med))
    q(conn, 'SET GLOBAL innodb_flush_log_at_trx_commit = %s', (flush_before,))
    return tp


def print_throughput(tp, args):
    if not tp:
        return
    print()
    print('== single-row write throughput with and without the sync triggers; statements compared (i = loop counter):')
    for op in ('update', 'insert', 'delete'):
        print('   %-7s %s' % (op, STATEMENTS.get(op, '')))
    print('   variants: none = no trigger; minimal = one-way plain triggers (UPDATE addresses by user_id / INSERT ... ON DUPLICATE KEY '
          'UPDATE, no guard, no backward triggers: the cost of writing the second row itself); ours = mysql_trigger_sync (direction both)')
    print('   the delete needs no trigger of ours (the FK ON DELETE CASCADE deletes the address): its cost is the cascade plus '
          'the skipped backward delete trigger')
    for flush, how, ops, med in tp:
        print('-- innodb_flush_log_at_trx_commit=%s, %s, %d autocommit ops per run, median of %d interleaved runs'
              % (flush, how, ops, args.tp_reps))
        for op in ('update', 'insert', 'delete'):
            base = med['none'][op]
            print('%-7s none %8.0f/s   minimal %8.0f/s (cost %5.1f%%)   ours %8.0f/s (cost %5.1f%%)'
                  % (op, base, med['minimal'][op], 100.0 * (1 - med['minimal'][op] / base), med['ours'][op],
                     100.0 * (1 - med['ours'][op] / base)))


def seeded_sandbox(args, name, log_bin=False, options=None, replica=False):
    """A sandbox under --root/<name> with --rows users; its server settings as given."""
    sb = Sandbox(os.path.join(args.root, name), preferred_ports={})
    sb.mariadb.configure(log_bin=log_bin or replica, options=options or {})
    sb.mariadb.start()
    if replica:
        sb.replica.start()
    sb.mariadb.create_database(DB)
    conn = sb.mariadb.root_connect(DB)
    t0 = time.time()
    create_schema(conn, args.rows)
    if replica:
        sb.replica.wait_caught_up(600)
    print('[%s] seeded users: %d rows in %.1fs; server %s, innodb_autoinc_lock_mode=%s, log_bin=%s'
          % ((name, args.rows, time.time() - t0) + tuple(q(conn, 'SELECT VERSION(), @@innodb_autoinc_lock_mode, @@log_bin')[0])), flush=True)
    return sb, conn


def fmt_ms(seconds):
    return '-' if seconds is None else '%.0f ms' % (seconds * 1000)


def one_copy(db, conn, writer, kind, mig, ready=None, **sync_args):
    """A fresh ``addresses``, then the bare copy (``kind`` 'bare') or ours (sync_present with ``sync_args``) with the writer's
    phase named ``kind``; after ours, the count of wrong rows, and the sync removed again.  Returns its figures."""
    q(conn, 'DROP TABLE IF EXISTS addresses')
    create_addresses(conn)
    if ready:
        ready()
    writer.set_phase(kind)
    t0 = time.time()
    if kind == 'bare':
        q(conn, BARE_COPY % 'addresses (user_id, address_line_1, address_line_2)')
        res = {}
    else:
        res = sync_present(db.root_connect(DB), DB, mig, verify=False, **sync_args)['entries'][0]['backfill']
    seconds = time.time() - t0
    writer.set_phase('between')
    out = dict(started=t0, seconds=seconds, backfill=res, app=writer.phase_stats(kind, seconds))
    writer.lat[kind], writer.errors[kind] = [], {}
    if kind != 'bare':
        out['diff'] = diff_count(conn)
        sync_absent(db.root_connect(DB), DB, mig)
    return out


def replica_scenario(args):
    sb, conn = seeded_sandbox(args, 'replica', replica=True, options={'innodb-autoinc-lock-mode': args.replica_lock_mode})
    db = sb.mariadb
    mig = parse_migration(MIGRATION)
    writer = AppWriter(db, args.rate, args.rows)
    monitor = None
    try:
        writer.start()
        monitor = LagMonitor(db, sb.replica).start()
        time.sleep(3)
        rounds = []
        for i in range(args.rounds):
            out = {}
            for kind in ('ours+replica', 'ours', 'bare'):
                replicas = replicas_from_params(dict(db.root_params(), database=DB), [{'login_unix_socket': sb.replica.socket}]) \
                    if kind == 'ours+replica' else []
                r = one_copy(db, conn, writer, kind, mig, ready=lambda: sb.replica.wait_caught_up(600), chunk_time=args.chunk_time,
                             replicas=replicas, max_replica_lag=args.max_replica_lag)
                for replica in replicas:
                    replica.close()
                sb.replica.wait_caught_up(600)
                r.update(rows=r['backfill'].get('rows_total') or args.rows, lag=monitor.stats(r['started'], time.time()))
                out[kind] = r
            rounds.append(out)
            print('round %d: %s' % (i + 1, ', '.join('%s %.2fs' % (k, v['seconds']) for k, v in out.items())), flush=True)
    finally:
        writer.finish()
        if monitor is not None:
            monitor.stop()
        sb.stop_all()
    print()
    setting = (args.rows, args.rate, args.max_replica_lag, args.chunk_time, args.replica_lock_mode, rounds[0]['ours']['backfill']['strategy'],
               len(rounds))
    print('== copy with a replica attached (%d users; app writer at %d writes/s; max_replica_lag %.1f s, chunk_time %.1f s; '
          'innodb_autoinc_lock_mode %d, strategy %s; %d rounds)' % setting)
    print('replica lag: zdt_lab.replica_lag (20 ms heartbeat, sampled every 50 ms) from the copy\'s start until the replica caught up')
    print('round  copy           seconds    rows/s  throttled  lag seen  max chunk | lag p50  lag p99  lag max  limit+chunk | '
          'app p50  app p99  app max  errors  diff')
    for i, out in enumerate(rounds, start=1):
        for kind, r in out.items():
            b = r['backfill']
            bound = args.max_replica_lag + b['max_chunk_seconds'] if kind == 'ours+replica' else None
            print('%5d  %-12s %8.2f  %8.0f  %9s  %8s  %9s | %7s  %7s  %7s  %11s | %7.2f  %7.2f  %7.1f  %6d  %4s'
                  % (i, kind, r['seconds'], r['rows'] / r['seconds'], '%.2fs' % b['throttled_seconds'] if b else '-',
                     '%.2fs' % b['max_replica_lag_seen'] if b.get('max_replica_lag_seen') is not None else '-',
                     '%.3fs' % b['max_chunk_seconds'] if b else '-', fmt_ms(r['lag']['p50']), fmt_ms(r['lag']['p99']),
                     fmt_ms(r['lag']['max']), fmt_ms(bound) if bound else '-', r['app']['p50_ms'], r['app']['p99_ms'], r['app']['max_ms'],
                     r['app']['errors'], r.get('diff', '-')))
    throttled = [r['ours+replica'] for r in rounds]
    worst = max(r['lag']['max'] - (args.max_replica_lag + r['backfill']['max_chunk_seconds']) for r in throttled)
    figures = (median([r['rows'] / r['seconds'] for r in throttled]), fmt_ms(max(r['lag']['max'] for r in throttled)), worst * 1000,
               'never above' if worst <= 0 else 'ABOVE')
    print('with the replica in replicas: median %.0f rows/s; replica lag max %s over all rounds; the largest lag minus its round\'s '
          'limit + longest chunk: %+.0f ms (%s)' % figures)


# the bare copy, then our three ways of copying into a table with an AUTO_INCREMENT column (the module uses values under
# lock mode 1, insert under lock mode 2; select is forced here to show why not)
PATHS = ('bare', 'values', 'insert', 'select')


def lock_mode_scenario(args):
    mig = parse_migration(MIGRATION)
    results = {}
    for mode in [int(m) for m in args.lock_modes.split(',')]:
        sb, conn = seeded_sandbox(args, 'lock-mode-%d' % mode, options={'innodb-autoinc-lock-mode': mode})
        writer = AppWriter(sb.mariadb, args.rate, args.rows)
        rounds = []
        try:
            writer.start()
            time.sleep(3)
            for i in range(args.rounds):
                out = {}
                for kind in PATHS:
                    out[kind] = one_copy(sb.mariadb, conn, writer, kind, mig, chunk_time=args.chunk_time, strategy=kind)
                rounds.append(out)
                print('[lock mode %d] round %d: %s' % (mode, i + 1, ', '.join('%s %.2fs' % (k, v['seconds']) for k, v in out.items())),
                      flush=True)
        finally:
            writer.finish()
            sb.stop_all()
        results[mode] = rounds
    print()
    print('== the copy paths under innodb_autoinc_lock_mode 1 and 2 (%d users into the seed\'s addresses: AUTO_INCREMENT id, '
          'UNIQUE(user_id), FK; app writer at %d writes/s; %d rounds; no binary log)' % (args.rows, args.rate, args.rounds))
    print('mode  copy    median s  vs bare (rounds)            app p99 (rounds)          app max   errors  slices rerun  '
          'diff from the old shape (rounds)')
    for mode, rounds in results.items():
        for kind in PATHS:
            ratios = [r['bare']['seconds'] / r[kind]['seconds'] for r in rounds]
            print('%4d  %-6s  %8.2f  %4.2f (%-20s)  %-24s  %6.1f ms  %6d  %12s  %s'
                  % (mode, kind, median([r[kind]['seconds'] for r in rounds]), median(ratios), ', '.join('%.2f' % x for x in ratios),
                     ', '.join('%.2f' % r[kind]['app']['p99_ms'] for r in rounds), max(r[kind]['app']['max_ms'] for r in rounds),
                     sum(r[kind]['app']['errors'] for r in rounds),
                     sum(r[kind]['backfill'].get('retries', 0) for r in rounds) if kind != 'bare' else '-',
                     ', '.join(str(r[kind].get('diff', '-')) for r in rounds)))


ALTER_MIGRATION = {
    'id': 17, 'description': 'Rename users.address_line_1 to street, upper-cased',
    'expand': [{'alter_column': {'table': 'users', 'column': 'address_line_1', 'rename_to': 'street', 'type': 'VARCHAR(120)',
                                 'up': 'UPPER(address_line_1)', 'down': 'street'}}]}
NOT_IN_SYNC = 'SELECT COUNT(*) FROM users WHERE NOT (street <=> UPPER(address_line_1) OR address_line_1 <=> street)'


def fresh_street(conn, db, mig):
    """users without the sync and without ``street`` (an instant drop), then the expand's column (an instant add)."""
    sync_absent(db.root_connect(DB), DB, mig)
    if q(conn, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'users' "
               "AND COLUMN_NAME = 'street'", (DB,))[0][0]:
        q(conn, 'ALTER TABLE users DROP COLUMN street')
    q(conn, 'DELETE FROM zdt_migration_step WHERE migration_id = 17') if q(conn, "SHOW TABLES LIKE 'zdt_migration_step'") else None
    q(conn, 'DELETE FROM zdt_migration_state WHERE migration_id = 17') if q(conn, "SHOW TABLES LIKE 'zdt_migration_state'") else None
    q(conn, 'DELETE FROM changelog WHERE change_number = 17') if q(conn, "SHOW TABLES LIKE 'changelog'") else None


def bare_update(conn, rows_per_chunk):
    """The floor: a chunked UPDATE over the primary key (chunks of ``rows_per_chunk`` keys found by walking the index, as
    ours are), one autocommit statement per chunk, no triggers."""
    lo = 0
    while True:
        found = q(conn, 'SELECT id FROM users WHERE id > %%s ORDER BY id LIMIT 1 OFFSET %d' % (rows_per_chunk - 1), (lo,))
        hi = found[0][0] if found else None
        if hi is None:
            q(conn, 'UPDATE users SET street = UPPER(address_line_1) WHERE id > %s', (lo,))
            return
        q(conn, 'UPDATE users SET street = UPPER(address_line_1) WHERE id > %s AND id <= %s', (lo, hi))
        lo = hi


def alter_column_scenario(args):
    sb, conn = seeded_sandbox(args, 'alter-column')
    db = sb.mariadb
    mig = parse_migration(ALTER_MIGRATION)
    writer = AppWriter(db, args.rate, args.rows)
    rounds = []
    server_ways = {}
    try:
        writer.start()
        time.sleep(3)
        for i in range(args.rounds):
            out = {}
            for kind in ('ours', 'bare-update'):
                fresh_street(conn, db, mig)
                apply_phase(db.root_connect(DB), mig, 'expand', DB)
                writer.set_phase(kind)
                t0 = time.time()
                if kind == 'ours':
                    res = sync_present(db.root_connect(DB), DB, mig, verify=False, chunk_time=args.chunk_time)['backfill']
                else:
                    bare_update(conn, args.update_chunk)
                    res = {}
                seconds = time.time() - t0
                writer.set_phase('between')
                out[kind] = dict(seconds=seconds, backfill=res, app=writer.phase_stats(kind, seconds),
                                 not_in_sync=q(conn, NOT_IN_SYNC)[0][0] if kind == 'ours' else '-')
                writer.lat[kind], writer.errors[kind] = [], {}
            rounds.append(out)
            print('round %d: %s' % (i + 1, ', '.join('%s %.2fs' % (k, v['seconds']) for k, v in out.items())), flush=True)
        fresh_street(conn, db, mig)
        for kind, sql in (('inplace-generated', 'ALTER TABLE users ADD COLUMN street VARCHAR(120) AS (UPPER(address_line_1)) STORED, '
                                                'ALGORITHM=INPLACE, LOCK=NONE'),
                          ('inplace-rebuild', 'ALTER TABLE users ENGINE=InnoDB, ALGORITHM=INPLACE, LOCK=NONE')):
            writer.set_phase(kind)
            t0 = time.time()
            try:
                q(conn, sql)
                refused = None
            except pymysql.err.MySQLError as exc:
                refused = '%s %s' % (exc.args[0], exc.args[1])
            seconds = time.time() - t0
            writer.set_phase('between')
            server_ways[kind] = dict(seconds=seconds, refused=refused, app=writer.phase_stats(kind, seconds), sql=sql)
            print('%s: %s' % (kind, 'refused: ' + refused if refused else '%.2fs' % seconds), flush=True)
    finally:
        writer.finish()
        sb.stop_all()
    print()
    setting = (args.rows, args.rate, args.chunk_time, args.update_chunk, len(rounds))
    print('== alter_column rename + up transform on users itself (%d rows; app writer at %d writes/s updating the old column; '
          'chunk_time %.1f s; bare UPDATE chunks of %d keys; %d rounds)' % setting)
    print('round  copy           seconds    rows/s  vs bare UPDATE | app p50  app p99  app max  errors | not in sync')
    for i, out in enumerate(rounds, start=1):
        for kind, r in out.items():
            ratio = out['bare-update']['seconds'] / r['seconds']
            print('%5d  %-12s %9.2f  %8.0f  %14.2f | %7.2f  %7.2f  %7.1f  %6d | %s %s'
                  % (i, kind, r['seconds'], args.rows / r['seconds'], ratio, r['app']['p50_ms'], r['app']['p99_ms'], r['app']['max_ms'],
                     r['app']['errors'], r['not_in_sync'], r['app']['error_codes'] or ''))
    for kind, r in server_ways.items():
        if r['refused']:
            print('       %-17s refused by the server: %s' % (kind, r['refused']))
        else:
            print('       %-17s %9.2f  %8.0f  %14s | %7.2f  %7.2f  %7.1f  %6d |' % (
                kind, r['seconds'], args.rows / r['seconds'], '-', r['app']['p50_ms'], r['app']['p99_ms'], r['app']['max_ms'],
                r['app']['errors']))
    print('ours: median %.0f rows/s, %.2fx the bare chunked UPDATE (median of the rounds\' ratios)'
          % (median([args.rows / r['ours']['seconds'] for r in rounds]),
             median([r['bare-update']['seconds'] / r['ours']['seconds'] for r in rounds])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    ap.add_argument('--scenario', choices=['default', 'replica', 'lock-modes', 'alter-column'], default='default')
    ap.add_argument('--update-chunk', type=int, default=2000, help='alter-column scenario: keys per bare UPDATE statement')
    ap.add_argument('--max-replica-lag', type=float, default=1.0, help='replica scenario: the module\'s max_replica_lag (s)')
    ap.add_argument('--lock-modes', default='1,2', help='lock-modes scenario: the innodb_autoinc_lock_mode values to compare')
    ap.add_argument('--replica-lock-mode', type=int, default=1, help='replica scenario: the primary\'s innodb_autoinc_lock_mode')
    ap.add_argument('--rows', type=int, default=1000000)
    ap.add_argument('--rate', type=int, default=1000, help='application writes per second during the copies')
    ap.add_argument('--chunk-time', type=float, default=0.5)
    ap.add_argument('--rounds', type=int, default=3, help='interleaved rounds of every copy (medians are printed)')
    ap.add_argument('--tp-ops', type=int, default=20000, help='ops per single-row throughput loop')
    ap.add_argument('--tp-ops-durable', type=int, default=3000, help='ops per loop with innodb_flush_log_at_trx_commit=1')
    ap.add_argument('--tp-ops-client', type=int, default=2000, help='ops per client round-trip run')
    ap.add_argument('--tp-reps', type=int, default=3, help='interleaved runs per variant (median is printed)')
    ap.add_argument('--root', default='/tmp/zdt-bench-backfill')
    ap.add_argument('--skip-ptosc', action='store_true')
    ap.add_argument('--skip-noai', action='store_true', help='skip the run into a target without AUTO_INCREMENT')
    ap.add_argument('--skip-throughput', action='store_true', help='skip the single-row write throughput part')
    ap.add_argument('--slice-time', type=float, default=None, help='experiment: override the backfill slice time (s)')
    ap.add_argument('--strategy', choices=['auto', 'values', 'select', 'insert'], default='auto',
                    help='backfill strategy (auto: what the module picks)')
    args = ap.parse_args()

    if args.slice_time:
        backfill_mod.SLICE_TIME = args.slice_time
    if args.scenario != 'default':
        uptime = os.getloadavg()
        print('load average at start: %.2f %.2f %.2f' % uptime)
        dict(replica=replica_scenario, **{'lock-modes': lock_mode_scenario, 'alter-column': alter_column_scenario})[args.scenario](args)
        print('load average at end: %.2f %.2f %.2f' % os.getloadavg())
        return
    sb = Sandbox(args.root, preferred_ports={})
    db = sb.mariadb
    db.start()
    try:
        db.create_database(DB)
        conn = db.root_connect(DB)
        t0 = time.time()
        create_schema(conn, args.rows)
        print('seeded users: %d rows in %.1fs (sandbox %s, port %d)' % (args.rows, time.time() - t0, args.root, db.port))
        print('server: %s, innodb_autoinc_lock_mode=%s' % q(conn, 'SELECT VERSION(), @@innodb_autoinc_lock_mode')[0])

        writer = AppWriter(db, args.rate, args.rows)
        writer.start()
        time.sleep(3)
        phases = {'idle': 3.0}
        mig = parse_migration(MIGRATION)
        mig_noai = parse_migration(NOAI_MIGRATION)
        rounds = []
        for i in range(args.rounds):
            rounds.append(copy_round(db, conn, writer, args, mig, mig_noai, phases))
            r = rounds[-1]
            print('round %d: bare %.2fs, ours %.2fs%s' % (i + 1, r['bare'], r['ours']['seconds'],
                                                          ', bare noai %.2fs, ours noai %.2fs' % (r['bare_noai'], r['ours_noai']['seconds'])
                                                          if 'ours_noai' in r else ''), flush=True)
        writer.finish()
        print_copy_speed(rounds, args)
        tp = [] if args.skip_throughput else trigger_throughput(db, conn, mig, args)
        print_throughput(tp, args)
        print()
        print('== application view (target %d writes/s, 2 connections, single-row autocommit writes on users; all rounds)' % args.rate)
        for name in ('idle', 'pt-osc', 'bare', 'ours', 'bare-noai', 'ours-noai'):
            if name not in phases:
                continue
            st = writer.phase_stats(name, phases[name])
            print('%-9s %6.1fs  %7.0f writes/s  p50 %6.2f ms  p99 %7.2f ms  max %8.2f ms  errors %d %s'
                  % (name, phases[name], st['per_second'], st['p50_ms'], st['p99_ms'], st['max_ms'], st['errors'],
                     st['error_codes'] or ''))
    finally:
        sb.stop_all()


if __name__ == '__main__':
    main()
