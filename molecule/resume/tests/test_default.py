"""After upgrade.yml was SIGKILLed mid-backfill and right after the switch, then rerun: v2 serves, nothing lost."""
import json
import os

from zdt_lab import checks

testinfra_hosts = ['localhost']


def _json(name):
    with open(os.path.join(checks.SANDBOX, name), encoding='utf-8') as handle:
        return json.load(handle)


def _timeline(name):
    with open(os.path.join(checks.SANDBOX, name), encoding='utf-8') as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_first_run_was_killed_mid_backfill():
    kill = _json('upgrade-1-killed-mid-backfill.json')
    assert kill['killed'] and kill['returncode'] == -9
    assert kill['still_alive'] == []
    for row in kill['progress']:
        assert row['state'] == 'running' and 0.1 * int(row['rows_total']) <= int(row['rows_done']) < int(row['rows_total'])
    # The checkpoint still says running after the kill: nothing finished the copy behind our back.
    assert [row['state'] for row in kill['progress_after']] == ['running']


def test_second_run_resumed_the_backfill_and_was_killed_after_the_switch():
    kill = _json('upgrade-2-killed-after-switch.json')
    assert kill['killed'] and kill['returncode'] == -9
    assert 'Drain the other color' in kill['last_task_started']
    # Only Ansible's processes were killed; the app releases the run started kept serving.
    assert not any('/app.py' in proc['cmdline'] for proc in kill['killed_after_the_playbook'])
    figures = [event['figures']['backfill'] for event in _timeline('upgrade-2-killed-after-switch.timeline')
               if event.get('event') == 'task_result' and 'backfill' in event.get('figures', {})]
    resumed = [backfill for backfill in figures if backfill.get('resumed_from') is not None]
    assert resumed, figures
    first_kill = _json('upgrade-1-killed-mid-backfill.json')
    # It restarted after the checkpoint the killed run left (or a later one), and copied only the rest.
    assert int(resumed[0]['resumed_from']) >= int(first_kill['progress'][0]['last_key'])
    assert resumed[0]['rows_copied'] < resumed[0]['rows_total']


def test_v2_serves_through_the_load_balancer():
    for _request in range(10):
        status, version, _body = checks.get(checks.ports()['lb'])
        assert (status, version) == (200, '2')


def test_old_color_is_stopped():
    assert not checks.accepts(checks.ports()['blue'])


def test_schema_is_contracted_and_no_sync_trigger_is_left():
    assert 'address_line_1' not in checks.columns('users')
    assert checks.columns('addresses') == ['id', 'user_id', 'address_line_1', 'address_line_2']
    assert checks.zdt_triggers() == ()


def test_the_resumed_backfill_verified_every_row():
    verified = [event['figures']['verify'] for event in _timeline('upgrade-2-killed-after-switch.timeline')
                if event.get('event') == 'task_result' and 'verify' in event.get('figures', {})]
    assert verified, 'the resumed run reported no verify figures'
    assert verified[-1]['mismatches'] == 0
    assert verified[-1]['rows_checked'] >= 30000


def test_no_failed_request_and_no_lost_write():
    checks.assert_upgrade_reports_clean()
