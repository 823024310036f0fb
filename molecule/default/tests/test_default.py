"""After site.yml and upgrade.yml under load (twice): v2 serves, schema contracted, nothing lost."""

from zdt_lab import checks

testinfra_hosts = ['localhost']


def test_v2_serves_through_the_load_balancer():
    for _request in range(10):
        status, version, _body = checks.get(checks.ports()['lb'])
        assert (status, version) == (200, '2')


def test_old_color_is_stopped():
    assert not checks.accepts(checks.ports()['blue'])


def test_schema_is_contracted():
    assert 'address_line_1' not in checks.columns('users')
    assert checks.columns('addresses') == ['id', 'user_id', 'address_line_1', 'address_line_2']
    indexes = {row[2] for row in checks.db_query('SHOW INDEX FROM addresses')}
    assert 'addresses_user' in indexes and 'addresses_user_id' not in indexes


def test_no_sync_trigger_is_left():
    assert checks.zdt_triggers() == ()


def test_no_failed_request_and_no_lost_write():
    checks.assert_upgrade_reports_clean()
