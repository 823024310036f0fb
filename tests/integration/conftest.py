"""Fixtures that give integration tests a real private MariaDB and HAProxy from the sandbox."""
import json
import os
import subprocess
import sys
import tempfile
import uuid

import pytest

from zdt_lab.lb import LB
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


def run_module_process(name, args, check_mode=False, diff=False, timeout=300):
    """Run plugins/modules/<name>.py as Ansible runs a module; return its JSON result."""
    module_args = dict(args)
    module_args.update({'_ansible_check_mode': check_mode, '_ansible_diff': diff})
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': module_args}, handle)
        args_path = handle.name
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO_ROOT, '.collections'))
    try:
        proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'plugins', 'modules', name + '.py'), args_path],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=timeout, check=False)
    finally:
        os.unlink(args_path)
    out = proc.stdout.decode(errors='replace')
    try:
        start = out.index('{')
        return json.loads(out[start:])
    except ValueError:
        raise AssertionError('module %s printed no JSON (rc=%s):\n%s\n%s'
                             % (name, proc.returncode, out, proc.stderr.decode(errors='replace')))


@pytest.fixture
def run_module():
    return run_module_process
