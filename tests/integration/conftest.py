"""Fixtures that give integration tests a real private MariaDB and HAProxy from the sandbox."""
import os
import shutil
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
    given = os.environ.get('ZDT_IT_SANDBOX_ROOT')
    root = given or tempfile.mkdtemp(prefix='zdt-it-')
    stack = Sandbox(root, preferred_ports={})
    try:
        yield stack
    finally:
        stack.stop_all()
        if not given:   # a datadir is hundreds of MB: removed once everything in it has stopped
            shutil.rmtree(root, ignore_errors=True)


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


def fresh_database(server):
    """Generator for a fixture: a new database on ``server`` (a sandbox MariaDB), dropped afterwards."""
    name = 'it_' + uuid.uuid4().hex[:12]
    server.create_database(name)
    yield Database(server, name)
    with server.root_connect() as conn, conn.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS `%s`' % name)


def private_sandbox(prefix, log_bin=False, options=None, replica=False):
    """Generator for a fixture: a sandbox of its own whose primary runs with other server settings (binary log,
    server options) than the session's, optionally with a replica; everything it started is stopped at the end."""
    stack = Sandbox(tempfile.mkdtemp(prefix=prefix), preferred_ports={})
    try:
        stack.mariadb.configure(log_bin=log_bin or replica, options=options)
        stack.mariadb.start()
        if replica:
            stack.replica.start()
        yield stack
    finally:
        stack.stop_all()
        shutil.rmtree(stack.root, ignore_errors=True)   # its datadirs: hundreds of MB


@pytest.fixture
def db(mariadb):
    yield from fresh_database(mariadb)


@pytest.fixture(scope='session')
def sandbox_factory():
    """:func:`private_sandbox`, for a module-scoped fixture: ``yield from sandbox_factory(prefix, **settings)``."""
    return private_sandbox


@pytest.fixture(scope='session')
def database_factory():
    """:func:`fresh_database`, for a fixture on another server: ``yield from database_factory(server)``."""
    return fresh_database


@pytest.fixture
def run_module():
    return run_module_process
