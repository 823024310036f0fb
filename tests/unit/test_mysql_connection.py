"""Connection options and login errors (no server)."""
import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils import mysql_connection as mc
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ConnectionFailed


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
