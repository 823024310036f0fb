"""Connection options, login errors and replicas' connection options (no server)."""
import re

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils import mysql_connection as mc
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ConnectionFailed, SpecError


class FakeDriverError(Exception):
    pass


class FakeDriver(object):
    class err(object):  # noqa: N801 - mimics pymysql.err
        MySQLError = FakeDriverError

    def __init__(self, exc):
        self.exc = exc
        self.kwargs = None

    def connect(self, **kwargs):
        self.kwargs = kwargs
        raise self.exc


PARAMS = dict(login_host='db.example', login_port=3307, login_user='deploy', login_password='S3cr3t!pw', login_unix_socket=None,
              config_file='/nonexistent/.my.cnf', connect_timeout=7, ca_cert=None, client_cert=None, client_key=None,
              check_hostname=None, database='app')


def test_connection_kwargs():
    kw = mc.connection_kwargs(PARAMS)
    assert kw['host'] == 'db.example' and kw['port'] == 3307 and kw['user'] == 'deploy' and kw['database'] == 'app'
    assert kw['connect_timeout'] == 7 and kw['charset'] == 'utf8mb4' and 'read_default_file' not in kw
    kw = mc.connection_kwargs(dict(PARAMS, login_unix_socket='/run/m.sock', ca_cert='/ca.pem', check_hostname=True))
    assert kw['unix_socket'] == '/run/m.sock' and 'host' not in kw and kw['ssl_ca'] == '/ca.pem' and kw['ssl_verify_identity'] is True


def test_config_file_used_only_when_present(tmp_path):
    cnf = tmp_path / 'my.cnf'
    cnf.write_text('[client]\nuser=x\n')
    assert mc.connection_kwargs(dict(PARAMS, config_file=str(cnf)))['read_default_file'] == str(cnf)


@pytest.mark.parametrize('code, text, expect', [
    (1045, "Access denied for user 'deploy'@'10.0.0.1' (using password: YES)", 'access denied for user deploy on db.example:3307'),
    (1049, "Unknown database 'app'", 'unknown database app on db.example:3307'),
    (2003, "Can't connect to MySQL server on 'db.example' ([Errno 111] Connection refused)", 'cannot reach the MySQL server at db.example:3307'),
    (1044, "Access denied for user 'deploy'@'%' to database 'app'", 'may not use database app'),
    (2003, 'weird driver text echoing S3cr3t!pw', 'cannot reach'),
])
def test_connect_errors_are_clear_and_never_contain_the_password(code, text, expect):
    with pytest.raises(ConnectionFailed) as err:
        mc.connect(PARAMS, driver=FakeDriver(FakeDriverError(code, text)))
    assert expect in str(err.value)
    assert 'S3cr3t!pw' not in str(err.value)


PRIMARY = dict(PARAMS, login_host='db1', login_port=3306, login_unix_socket='/run/mysqld/mysqld.sock')
NOT_GIVEN = dict((k, None) for k in ('login_host', 'login_port', 'login_user', 'login_password', 'login_unix_socket', 'config_file',
                                     'connect_timeout', 'ca_cert', 'client_cert', 'client_key', 'check_hostname'))


def test_a_replica_takes_the_primarys_value_for_every_option_it_leaves_out():
    params = mc.replica_params(PRIMARY, dict(NOT_GIVEN, login_host='db2'))
    assert (params['login_host'], params['login_port'], params['login_user'], params['login_password'], params['database']) == \
        ('db2', 3306, 'deploy', 'S3cr3t!pw', 'app')
    # host or port given: never the primary's socket (it would lead back to the primary)
    assert params['login_unix_socket'] is None and mc.describe_target(params) == 'db2:3306'
    params = mc.replica_params(PRIMARY, dict(NOT_GIVEN, login_port=3307, login_user='reader'))
    assert (params['login_host'], params['login_port'], params['login_user']) == ('db1', 3307, 'reader')
    params = mc.replica_params(PRIMARY, dict(NOT_GIVEN, login_unix_socket='/run/replica.sock'))
    assert mc.describe_target(params) == 'unix socket /run/replica.sock'


@pytest.mark.parametrize('replica, message', [
    (NOT_GIVEN, 'names neither login_host, login_port nor login_unix_socket'),
    (dict(NOT_GIVEN, login_unix_socket='/run/mysqld/mysqld.sock'), 'is the primary itself (unix socket /run/mysqld/mysqld.sock)'),
    (dict(NOT_GIVEN, login_host='db1'), None),
])
def test_a_replica_that_would_be_the_primary_is_refused(replica, message):
    primary = dict(PRIMARY, login_unix_socket=None) if message is None else PRIMARY
    with pytest.raises(SpecError, match=re.escape(message or 'is the primary itself (db1:3306)')):
        mc.replica_params(primary, replica)
