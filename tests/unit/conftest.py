"""The ``fake`` fixture: fake HAProxy CLIs on unix sockets, closed after the test."""
import pytest

from fake_haproxy_cli import FakeCLI


@pytest.fixture
def fake():
    servers = []

    def make(replies, **kw):
        srv = FakeCLI(replies, **kw)
        servers.append(srv)
        return srv
    yield make
    for srv in servers:
        srv.close()
