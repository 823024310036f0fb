"""Fixtures of the unit tests: fake HAProxy CLIs, and the SyncPlans of the seed's cross-table entry and of a same-table entry."""
import pytest

from zdt_lab.fake_haproxy_cli import FakeCLI

from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import SyncSpec
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_plan import SyncPlan


@pytest.fixture
def fake():
    """fake(replies, **kw) -> a fake HAProxy CLI on a unix socket, closed after the test."""
    servers = []

    def make(replies, **kw):
        srv = FakeCLI(replies, **kw)
        servers.append(srv)
        return srv
    yield make
    for srv in servers:
        srv.close()


def _cross_plan(direction='both', autoinc='id', types=('varchar', 'varchar')):
    spec = SyncSpec(0, 'users', 'id', ('address_line_1', 'address_line_2'), 'addresses', 'user_id',
                    ('address_line_1', 'address_line_2'), direction, 'cross')
    return SyncPlan(2, spec, types, types, 'int', target_autoinc=autoinc, to_key_index='addresses_user_id')


def _same_plan(direction='both'):
    spec = SyncSpec(1, 'items', 'id', ('old_name',), 'items', 'id', ('new_name',), direction, 'same')
    return SyncPlan(3, spec, ['varchar'], ['varchar'], 'int')


@pytest.fixture
def cross_plan():
    """cross_plan(direction='both', autoinc='id', types=(...)) -> the seed's users -> addresses entry."""
    return _cross_plan


@pytest.fixture
def same_plan():
    """same_plan(direction='both') -> a same-table entry items.old_name -> items.new_name."""
    return _same_plan
