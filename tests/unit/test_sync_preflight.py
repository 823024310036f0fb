"""The server checks made before any change, each with a message naming the setting and the fix (no server)."""
import re

import pytest

from zdt_lab.traffic_fakes import FakeClock

from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_preflight as pf
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_replicas import ReplicaUnavailable


class Server(object):
    """A connection answering the preflight's queries from ``answers`` (statement start -> rows)."""

    def __init__(self, **answers):
        self.answers = dict(version='10.11.19-MariaDB-0+deb12u1', wsrep=(), log_bin=0, binlog_format='MIXED', trust=0,
                            grants=("GRANT USAGE ON *.* TO `deploy`@`%`",), server_id=1)
        self.answers.update(answers)
        self.asked = []

    def rows(self, sql):
        a = self.answers
        self.asked.append(sql)
        if sql == 'SELECT VERSION()':
            return ((a['version'],),)
        if sql.startswith("SHOW VARIABLES LIKE 'wsrep_on'"):
            return a['wsrep']
        if sql == 'SELECT @@GLOBAL.log_bin, @@SESSION.binlog_format':
            return ((a['log_bin'], a['binlog_format']),)
        if sql == 'SELECT @@GLOBAL.log_bin, @@GLOBAL.log_bin_trust_function_creators':
            return ((a['log_bin'], a['trust']),)
        if sql == 'SHOW GRANTS':
            return tuple((g,) for g in a['grants'])
        if sql == 'SELECT @@GLOBAL.server_id':
            return ((a['server_id'],),)
        raise AssertionError(sql)

    def cursor(self):
        server = self

        class Cursor(object):
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def execute(self, sql, args=None):
                self.result = server.rows(sql)

            def fetchall(self):
                return self.result
        return Cursor()


def test_a_supported_server_passes_every_check():
    server = Server(log_bin=1, binlog_format='ROW', grants=('GRANT SUPER ON *.* TO `deploy`@`%`',))
    pf.check_server(server, creates_triggers=True)
    assert 'SHOW GRANTS' in server.asked


@pytest.mark.parametrize('version, ok', [
    ('10.2.2-MariaDB', False), ('10.2.3-MariaDB', True), ('10.1.48-MariaDB-0+deb9u2', False), ('11.4.2-MariaDB', True),
    ('5.7.1-log', False), ('5.7.44-log', True), ('8.0.36', True), ('5.6.51', False),
])
def test_server_version(version, ok):
    if ok:
        pf.check_server_version(Server(version=version))
        return
    with pytest.raises(DatabaseError, match=r'server version %s is too old.*(MariaDB 10\.2\.3|MySQL 5\.7\.2) or later' % re.escape(version)):
        pf.check_server_version(Server(version=version))


def test_galera_node_is_refused():
    with pytest.raises(DatabaseError, match=r'Galera cluster node \(wsrep_on=ON\)'):
        pf.check_galera(Server(wsrep=(('wsrep_on', 'ON'),)))
    pf.check_galera(Server(wsrep=(('wsrep_on', 'OFF'),)))   # a server built with Galera support, not a node
    pf.check_galera(Server(wsrep=()))                        # MySQL: no such variable


@pytest.mark.parametrize('log_bin, fmt, refused', [(1, 'STATEMENT', True), (1, 'statement', True), (1, 'MIXED', False),
                                                   (1, 'ROW', False), (0, 'STATEMENT', False)])
def test_statement_binlog_format_is_refused_only_with_binary_logging_on(log_bin, fmt, refused):
    server = Server(log_bin=log_bin, binlog_format=fmt)
    if not refused:
        pf.check_binlog_format(server)
        return
    with pytest.raises(DatabaseError, match=r"binlog_format=STATEMENT.*READ COMMITTED.*SET GLOBAL binlog_format = 'ROW'"):
        pf.check_binlog_format(server)


def test_trigger_privileges_under_binary_logging():
    with pytest.raises(DatabaseError, match='SUPER.*log_bin_trust_function_creators'):
        pf.check_trigger_privileges(Server(log_bin=1))
    pf.check_trigger_privileges(Server(log_bin=1, trust=1))
    pf.check_trigger_privileges(Server(log_bin=1, grants=('GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`',)))
    pf.check_trigger_privileges(Server(log_bin=0))


def test_check_server_checks_the_version_first_and_privileges_only_for_new_triggers():
    server = Server(version='10.1.1-MariaDB', wsrep=(('wsrep_on', 'ON'),))
    with pytest.raises(DatabaseError, match='too old'):
        pf.check_server(server, creates_triggers=True)
    server = Server(log_bin=1)
    pf.check_server(server, creates_triggers=False)
    assert 'SHOW GRANTS' not in server.asked


class FakeReplica(object):
    def __init__(self, server_id=2, unreachable_for=0, clock=None):   # unreachable until the clock reads unreachable_for
        self.label = 'db2:3306'
        self.server_id = server_id
        self.unreachable_for = unreachable_for
        self.clock = clock

    def query(self, sql, args=None):
        assert sql == 'SELECT @@GLOBAL.server_id'
        if self.clock() < self.unreachable_for:
            raise ReplicaUnavailable(self.label, 'Connection refused')
        return ((self.server_id,),)


def test_replicas_must_answer_within_replica_timeout_and_not_be_the_primary():
    clock = FakeClock()
    pf.check_replicas(Server(), [FakeReplica(clock=clock, unreachable_for=102)], 5, sleep=clock.sleep, clock=clock)
    assert 102 <= clock.now < 103
    clock = FakeClock()
    with pytest.raises(DatabaseError, match=r'db2:3306 cannot be reached: Connection refused, for 5 s .*nothing was changed'):
        pf.check_replicas(Server(), [FakeReplica(clock=clock, unreachable_for=10 ** 9)], 5, sleep=clock.sleep, clock=clock)
    with pytest.raises(DatabaseError, match="has the primary's server_id 1"):
        pf.check_replicas(Server(), [FakeReplica(server_id=1, clock=clock)], 5, sleep=clock.sleep, clock=clock)
