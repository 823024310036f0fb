"""The least privileges the database modules need, as documented in the README, are enough and needed.

The deploy account gets only these on the application's database:
SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES, TRIGGER.
"""
import os
import secrets

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIGRATIONS = os.path.join(REPO_ROOT, 'sample', 'migrations')
DEPLOY_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'CREATE', 'DROP', 'ALTER', 'INDEX', 'REFERENCES', 'TRIGGER']


def make_deploy_user(db, privileges):
    user = 'deploy_' + secrets.token_hex(4)
    password = secrets.token_urlsafe(12)
    with db.root_connect() as conn, conn.cursor() as cur:
        cur.execute('CREATE USER %s@%s IDENTIFIED BY %s', (user, '127.0.0.1', password))
        cur.execute('GRANT %s ON `%s`.* TO %%s@%%s' % (', '.join(privileges), db.name), (user, '127.0.0.1'))
    return {'login_host': '127.0.0.1', 'login_port': db.server.port, 'login_user': user, 'login_password': password,
            'database': db.name}


def drop_user(db, params):
    with db.root_connect() as conn, conn.cursor() as cur:
        cur.execute('DROP USER %s@%s', (params['login_user'], '127.0.0.1'))


def zdt_triggers(db):
    return db.query("SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = %s AND trigger_name LIKE 'zdt%%'",
                    (db.name,))


def test_whole_lifecycle_with_least_privileges(db, run_module):
    login = make_deploy_user(db, DEPLOY_PRIVILEGES)
    try:
        for migration in ('001_users.yml', '002_addresses.yml'):
            result = run_module('mysql_expand', dict(login, migration=os.path.join(MIGRATIONS, migration)))
            assert not result.get('failed'), result.get('msg')
        db.query("INSERT INTO users (name, email, address_line_1) VALUES ('a', 'a@example.com', '1 Main St')")
        result = run_module('mysql_trigger_sync', dict(login, migration=os.path.join(MIGRATIONS, '002_addresses.yml')))
        assert not result.get('failed'), result.get('msg')
        assert result['verify']['mismatches'] == 0
        assert db.query('SELECT user_id, address_line_1 FROM addresses') == ((1, '1 Main St'),)
        result = run_module('mysql_trigger_sync', dict(login, migration=os.path.join(MIGRATIONS, '002_addresses.yml'), state='absent'))
        assert not result.get('failed'), result.get('msg')
        result = run_module('mysql_expand', dict(login, migration=os.path.join(MIGRATIONS, '002_addresses.yml'), phase='contract'))
        assert not result.get('failed'), result.get('msg')
        assert zdt_triggers(db) == ()
    finally:
        drop_user(db, login)


def test_missing_trigger_privilege_fails_clearly_and_changes_nothing(db, run_module):
    login = make_deploy_user(db, [p for p in DEPLOY_PRIVILEGES if p != 'TRIGGER'])
    try:
        for migration in ('001_users.yml', '002_addresses.yml'):
            assert not run_module('mysql_expand', dict(login, migration=os.path.join(MIGRATIONS, migration))).get('failed')
        result = run_module('mysql_trigger_sync', dict(login, migration=os.path.join(MIGRATIONS, '002_addresses.yml')))
        assert result.get('failed')
        assert 'TRIGGER' in result['msg'] or 'denied' in result['msg'], result['msg']
        assert login['login_password'] not in result['msg']
        assert zdt_triggers(db) == ()
    finally:
        drop_user(db, login)


def test_missing_create_privilege_fails_before_any_change(db, run_module):
    login = make_deploy_user(db, [p for p in DEPLOY_PRIVILEGES if p != 'CREATE'])
    try:
        result = run_module('mysql_expand', dict(login, migration=os.path.join(MIGRATIONS, '001_users.yml')))
        assert result.get('failed')
        assert 'denied' in result['msg'] or 'CREATE' in result['msg'], result['msg']
        assert db.query("SHOW TABLES LIKE 'users'") == ()
    finally:
        drop_user(db, login)


def test_missing_alter_privilege_stops_contract_before_any_change(db, run_module):
    """ALTER is needed only to contract (and to undo an add_column); its absence leaves the schema as it was."""
    login = make_deploy_user(db, [p for p in DEPLOY_PRIVILEGES if p != 'ALTER'])
    migration = os.path.join(MIGRATIONS, '002_addresses.yml')
    try:
        assert not run_module('mysql_expand', dict(login, migration=os.path.join(MIGRATIONS, '001_users.yml'))).get('failed')
        assert not run_module('mysql_expand', dict(login, migration=migration)).get('failed')
        result = run_module('mysql_expand', dict(login, migration=migration, phase='contract'))
        assert result.get('failed')
        assert 'denied' in result['msg'] or 'ALTER' in result['msg'], result['msg']
        columns = [row[0] for row in db.query('SELECT column_name FROM information_schema.columns WHERE table_schema = %s '
                                              "AND table_name = 'users'", (db.name,))]
        assert 'address_line_1' in columns and 'address_line_2' in columns
    finally:
        drop_user(db, login)
