"""Unit tests of zdt_lab.demo's report (tools/demo.py): phases from the timeline, requests per phase, traffic share."""
from zdt_lab import demo


def task(t, role, tasks_file, action='zdt.bluegreen.mysql_expand'):
    path = '/r/roles/%s/tasks/%s.yml:3' % (role.split('.')[-1], tasks_file) if role else '/r/playbooks/upgrade.yml:9'
    return {'event': 'task_start', 'time': t, 'role': role, 'path': path, 'action': action}


def result(t, figures=None):
    return {'event': 'task_result', 'time': t, 'figures': figures or {}}


def test_phases_follow_the_roles_and_includes_start_none():
    events = [
        task(10.0, None, None, 'ansible.builtin.assert'),
        task(11.0, 'zdt.bluegreen.schema_migration', 'expand'), result(12.0),
        task(12.0, 'zdt.bluegreen.schema_migration', 'sync'), result(15.0, {'backfill': {'rows_copied': 5}}),
        task(15.0, 'zdt.bluegreen.app_release', 'main', 'ansible.builtin.unarchive'), result(16.0),
        task(16.0, 'zdt.bluegreen.app_release', 'supervised', 'ansible.builtin.command'), result(17.0),
        # contract.yml's first task only includes drop_sync.yml: no phase of its own
        task(20.0, 'zdt.bluegreen.schema_migration', 'contract', 'ansible.builtin.include_tasks'),
        task(20.1, 'zdt.bluegreen.schema_migration', 'drop_sync'), result(21.0),
        task(21.0, 'zdt.bluegreen.schema_migration', 'contract'), result(22.0),
    ]
    phase_list, startup = demo.phases(events, launch=9.0)
    names = [p['name'] for p in phase_list]
    assert names == ['plan: read the live color', 'expand', 'triggers + backfill + verify', 'start the new version',
                     'drop the triggers', 'contract']
    assert startup == 1.0
    sync = phase_list[2]
    assert (sync['start'], sync['end']) == (12.0, 15.0) and sync['figures'] == {'backfill': {'rows_copied': 5}}
    assert phase_list[3]['tasks'] == 3   # the include continues the phase that runs


def test_requests_and_errors_are_counted_per_phase():
    phase_list = [{'name': 'a', 'start': 0.0, 'end': 2.0}, {'name': 'b', 'start': 2.0, 'end': 3.0}]
    samples = [{'t': 0.0, 'requests': 5, 'errors': 0}, {'t': 1.0, 'requests': 4, 'errors': 1}, {'t': 2.0, 'requests': 6, 'errors': 0}]
    assert demo.bucket_by_phase(samples, phase_list) == [
        {'phase': 'a', 'seconds': 2.0, 'requests': 9, 'errors': 1}, {'phase': 'b', 'seconds': 1.0, 'requests': 6, 'errors': 0}]


def test_share_over_time():
    samples = [{'t': t, 'by_version': {'1': 10 if t < 5 else 0, '2': 0 if t < 5 else 10}} for t in range(10)]
    assert demo.share_over_time(samples) == ['  t+  0s  v1 100%  v2   0%', '  t+  5s  v1   0%  v2 100%']
