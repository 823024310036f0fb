"""Named-lock names stay within the server's 64 characters (no server)."""
from ansible_collections.zdt.bluegreen.plugins.module_utils import mysql_lock, schema_apply, sync_runner


def test_backfill_lock_name_fits_mysql_limit():
    assert sync_runner.lock_name('shop', 2) == 'zdt_backfill_shop_2'
    assert len(sync_runner.lock_name('x' * 64, 2 ** 63 - 1)) <= 64


def test_schema_lock_name_is_bounded():
    assert schema_apply.lock_name('app') == 'zdt_schema.app'
    assert len(schema_apply.lock_name('x' * 64)) <= 64


def test_long_database_names_are_hashed_keeping_prefix_and_suffix():
    name = mysql_lock.lock_name('zdt_backfill_', 'd' * 80, '_7')
    assert name.startswith('zdt_backfill_') and name.endswith('_7') and len(name) <= 64
    assert name == mysql_lock.lock_name('zdt_backfill_', 'd' * 80, '_7')
    assert name != mysql_lock.lock_name('zdt_backfill_', 'e' * 80, '_7')
