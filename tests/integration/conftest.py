"""Fixtures that give integration tests a real private MariaDB and HAProxy from the sandbox."""
import os
import tempfile
import uuid

import pytest

from zdt_lab.lb import LB
from zdt_lab.modules import run_module as run_module_process
from zdt_lab.sandbox import Sandbox

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='session')
def sandbox():
    """A private stack for this test session: random free ports, stopped at the end even on failure."""
    root = os.environ.get('ZDT_IT_SANDBOX_ROOT') or tempfile.mkdtemp(prefix='zdt-it-')
    stack = Sandbox(root, preferred_ports={})
    try:
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope='module')
def lb(sandbox):
    """The sandbox HAProxy over two Python backends (blue: version 1, green: version 2), per test module."""
    balancer = LB(sandbox)
    balancer.start()
    try:
        yield balancer
    finally:
        balancer.stop()


@pytest.fixture(scope='session')
def mariadb(sandbox):
    sandbox.mariadb.start()
    return sandbox.mariadb


class Database:
    """A fresh database on the sandbox server, reached with the application account."""

    def __init__(self, server, name):
        self.server = server
        self.name = name
        self.params = dict(server.app_params(), database=name)

    def connect(self):
        return self.server.app_connect(self.name)

    def root_connect(self):
        return self.server.root_connect(self.name)

    def query(self, sql, args=None):
        with self.root_connect() as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()


@pytest.fixture
def db(mariadb):
    name = 'it_' + uuid.uuid4().hex[:12]
    mariadb.create_database(name)
    database = Database(mariadb, name)
    yield database
    with mariadb.root_connect() as conn, conn.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS `%s`' % name)


@pytest.fixture
def run_module():
    return run_module_process
