"""mysql_expand's bookkeeping without a server: drift detection and the changelog DDL."""
import os

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils import schema_state
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DriftError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration

ADDRESSES = parse_migration(os.path.join(os.path.dirname(__file__), '..', '..', 'sample', 'migrations', '002_addresses.yml'))


def test_drift():
    schema_state.check_drift(ADDRESSES, {'expand': {'checksum': ADDRESSES.checksum, 'status': 'done'}})
    with pytest.raises(DriftError) as err:
        schema_state.check_drift(ADDRESSES, {'expand': {'checksum': '0' * 64, 'status': 'done'}})
    assert 'migration 2' in str(err.value)


def test_changelog_ddl_quotes_name():
    assert schema_state.changelog_ddl('changelog').startswith('CREATE TABLE IF NOT EXISTS `changelog` (change_number BIGINT NOT NULL')
