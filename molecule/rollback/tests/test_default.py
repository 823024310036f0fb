"""After a v2 that failed its canary gate check: rolled back to v1, v2 stopped, nothing lost, 0 failed requests."""
import json
import os

from zdt_lab import checks

testinfra_hosts = ['localhost']


def _upgrade_log():
    with open(os.path.join(checks.SANDBOX, 'upgrade-rollback.log'), encoding='utf-8') as handle:
        return handle.read()


def test_the_upgrade_failed_and_rolled_itself_back():
    log = _upgrade_log()
    assert not log.startswith('rc=0\n')
    assert 'failed at "Gate - the checks pass through this load balancer"' in log.replace('\n', ' ')
    assert 'GET http://127.0.0.1:%d/test/check: expected status 200, got status 503' % checks.ports()['lb'] in log.replace('\n', ' ')
    assert 'Rolled back: traffic on blue (version 1), version 2 stopped' in log.replace('\n', ' ')


def test_v2_took_canary_traffic_before_the_failed_check():
    with open(os.path.join(checks.SANDBOX, 'upgrade-rollback.timeline'), encoding='utf-8') as handle:
        events = [json.loads(line) for line in handle if line.strip()]
    started = [str(event.get('task')) for event in events if event.get('event') == 'task_start']
    switched = [i for i, name in enumerate(started) if 'Give the active color its share' in name]
    gated = [i for i, name in enumerate(started) if 'Gate - the checks pass through this load balancer' in name]
    rescued = [i for i, name in enumerate(started) if 'Put the traffic back on the old color' in name]
    # One canary step (25 %) was given traffic, its gate failed, then the rescue put it back.
    assert len(switched) == 1 and len(gated) == 1 and len(rescued) == 1, started
    assert switched[0] < gated[0] < rescued[0]


def test_v1_serves_through_the_load_balancer():
    for _request in range(10):
        status, version, _body = checks.get(checks.ports()['lb'])
        assert (status, version) == (200, '1')
    status, version, _body = checks.get(checks.ports()['lb'], '/api/users?limit=5')
    assert (status, version) == (200, '1')


def test_v1_runs_and_v2_is_stopped():
    assert checks.get(checks.ports()['blue'])[:2] == (200, '1')
    assert not checks.accepts(checks.ports()['green'])


def test_expanded_schema_and_sync_triggers_stay():
    assert {'address_line_1', 'address_line_2'} <= set(checks.columns('users'))
    assert checks.columns('addresses') == ['id', 'user_id', 'address_line_1', 'address_line_2']
    assert len(checks.zdt_triggers()) > 0


def test_v2_served_requests_none_failed_and_every_write_is_in_both_shapes():
    reports = checks.load_reports()
    assert len(reports) == 1
    report = reports[0]
    assert report['requests'] > 0
    assert report['versions'].get('2', 0) > 0, report['versions']
    assert report['failed'] == 0, report['failures']
    # Writes v2 acknowledged (the last acknowledgement of the row came from v2) ...
    assert any(record.get('version') == '2' for record in report['users'].values())
    # ... and every acknowledged write reads back the same in the old (v1) and the new shape.
    assert report['verify']['schema'] == 'both'
    assert report['verify']['lost_writes'] == 0, report['verify']['lost']
