"""add_foreign_key against a real MariaDB: orphans refused before any change, the key added online while the
application writes, orphans written while it was added found afterwards (the key dropped again), rollback."""
import threading
import time

import pymysql
import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils import schema_apply
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration

MIGRATION = {'id': 40, 'description': 'orders reference customers', 'expand': [
    {'add_foreign_key': {'table': 'orders', 'name': 'orders_customer_fk', 'columns': ['customer_id'],
                         'references': {'table': 'customers', 'columns': ['id']}, 'on_delete': 'RESTRICT'}}]}


def execute(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def create(conn, orphans=()):
    execute(conn, 'CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50))')
    execute(conn, 'CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT NULL, total INT)')
    execute(conn, "INSERT INTO customers SELECT seq, CONCAT('c', seq) FROM seq_1_to_500")
    execute(conn, 'INSERT INTO orders (customer_id, total) SELECT 1 + seq % 500, seq FROM seq_1_to_5000')
    execute(conn, 'INSERT INTO orders (customer_id, total) VALUES (NULL, 0)')   # MATCH SIMPLE: not an orphan
    for key in orphans:
        execute(conn, 'INSERT INTO orders (customer_id, total) VALUES (%s, 0)', (key,))


def foreign_keys(conn):
    return execute(conn, "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()")


def test_orphans_are_refused_naming_them_before_any_change(db, run_module):
    conn = db.connect()
    create(conn, orphans=(9001, 9002, 9002))
    for check_mode in (True, False):
        res = run_module('mysql_expand', dict(db.params, migration=MIGRATION), check_mode=check_mode)
        assert res.get('failed'), res
        assert res['msg'].startswith('expand[0] add_foreign_key orders_customer_fk on orders: refused before any change: 3 row(s)'), res
        assert '(customer_id)=(9001)' in res['msg'] and '(customer_id)=(9002)' in res['msg']
    assert foreign_keys(conn) == () and execute(conn, "SHOW TABLES LIKE 'zdt_%'") == ()


def test_added_online_while_the_application_writes_then_idempotent_and_rolled_back(db, run_module):
    conn = db.connect()
    create(conn)
    stop = threading.Event()
    errors, ops = [], [0]

    def writer():
        c = db.connect()
        n = 0
        while not stop.is_set():
            n += 1
            try:
                execute(c, 'INSERT INTO orders (customer_id, total) VALUES (%s, %s)', (1 + n % 500, n))
                execute(c, 'UPDATE orders SET total = total + 1 WHERE id = %s', (1 + n % 5000,))
                ops[0] += 2
            except pymysql.err.OperationalError as exc:
                if exc.args[0] not in (1205, 1213):
                    errors.append(exc)
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        time.sleep(0.2)
        planned = run_module('mysql_expand', dict(db.params, migration=MIGRATION), check_mode=True)
        assert planned['changed'] is True and foreign_keys(conn) == ()
        res = run_module('mysql_expand', dict(db.params, migration=MIGRATION))
        assert not res.get('failed'), res
        assert res['statements'] == ['ALTER TABLE `orders` ADD CONSTRAINT `orders_customer_fk` FOREIGN KEY (`customer_id`) '
                                     'REFERENCES `customers` (`id`) ON DELETE RESTRICT, ALGORITHM=INPLACE, LOCK=NONE']
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(10)
    assert errors == [] and ops[0] > 50
    assert foreign_keys(conn) == (('orders_customer_fk',),)
    # the server checks the key now, for every session
    with pytest.raises(pymysql.err.IntegrityError):
        execute(conn, 'INSERT INTO orders (customer_id, total) VALUES (9999, 0)')
    assert run_module('mysql_expand', dict(db.params, migration=MIGRATION))['changed'] is False
    back = run_module('mysql_expand', dict(db.params, migration=MIGRATION, phase='rollback'))
    assert back['changed'] is True and back['statements'][0].startswith('ALTER TABLE `orders` DROP FOREIGN KEY `orders_customer_fk`')
    assert foreign_keys(conn) == ()


def test_orphans_written_while_the_key_was_added_drop_it_again(db, monkeypatch):
    conn = db.connect()
    create(conn)
    real = schema_apply.run_ddl

    def orphan_meanwhile(c, statement, *args, **kwargs):
        # an application session writes an orphan after the first count, before the key exists (it checks nothing yet)
        if 'ADD CONSTRAINT' in statement:
            execute(db.connect(), 'INSERT INTO orders (customer_id, total) VALUES (7777, 0)')
        return real(c, statement, *args, **kwargs)

    monkeypatch.setattr(schema_apply, 'run_ddl', orphan_meanwhile)
    mig = parse_migration(MIGRATION)
    with pytest.raises(DatabaseError) as err:
        schema_apply.apply_phase(db.connect(), mig, 'expand', db.name)
    assert 'orphans were written while the key was added, the key was dropped again: 1 row(s)' in str(err.value)
    assert '(customer_id)=(7777)' in str(err.value)
    assert foreign_keys(conn) == ()
    assert execute(conn, 'SELECT status FROM zdt_migration_step WHERE migration_id = 40') == (('failed',),)
    monkeypatch.setattr(schema_apply, 'run_ddl', real)
    execute(conn, 'DELETE FROM orders WHERE customer_id = 7777')
    assert schema_apply.apply_phase(db.connect(), mig, 'expand', db.name).changed
    assert foreign_keys(conn) == (('orders_customer_fk',),)


def test_a_killed_run_that_added_the_key_counts_the_orphans_on_the_next_run(db):
    """The step was recorded as running and the key exists (killed between the ALTER and the second count): the next run
    counts the orphans before taking the key as done."""
    conn = db.connect()
    create(conn)
    mig = parse_migration(MIGRATION)
    schema_apply.apply_phase(db.connect(), mig, 'expand', db.name)
    execute(conn, 'SET SESSION foreign_key_checks = 0')
    execute(conn, 'INSERT INTO orders (customer_id, total) VALUES (6666, 0)')
    execute(conn, 'SET SESSION foreign_key_checks = 1')
    execute(conn, "UPDATE zdt_migration_step SET status = 'running' WHERE migration_id = 40")
    execute(conn, "UPDATE zdt_migration_state SET status = 'running' WHERE migration_id = 40")
    execute(conn, 'DELETE FROM changelog WHERE change_number = 40')
    with pytest.raises(DatabaseError) as err:
        schema_apply.apply_phase(db.connect(), mig, 'expand', db.name)
    assert '(customer_id)=(6666)' in str(err.value) and foreign_keys(conn) == ()
