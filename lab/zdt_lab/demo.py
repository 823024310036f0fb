"""`make demo`: the whole blue/green upgrade under load on a local sandbox, then a report.

Starts a fresh sandbox (the seed's ports 8000/8001/8002 when free), deploys v1 with site.yml,
loads sample users, runs upgrade.yml while the load generator (loadgen) sends reads and writes through
HAProxy, verifies every acknowledged write against the final database, stops everything and
prints a report (also written as HTML with a chart).  Exits non-zero when a request failed or
a write was lost.  With ``--replica`` the primary logs in binary and a MariaDB replica follows it
(GTID over loopback): the report shows the replica's lag over the upgrade (measured by a heartbeat
of the demo's own, every 20 ms) and whether the replica holds exactly the primary's data at the
end; a replica that differs also makes the exit code non-zero.  When a step fails (a playbook, the seed), the report is still produced from
what was measured: the load stops, the writes are verified against the database before the
sandbox stops, the two lines are printed, and the exit code is 2.
"""
import argparse
import html
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from zdt_lab import REPO_ROOT, loadgen
from zdt_lab.replica_lag import LagMonitor, same_data
from zdt_lab.sandbox import Sandbox, SandboxError

INVENTORY = os.path.join(REPO_ROOT, 'inventories', 'sandbox')
DATABASE = 'app'  # passed to the playbooks as zdt_db_name


def log(message):
    print('[demo %s] %s' % (time.strftime('%H:%M:%S'), message), flush=True)


class PlaybookFailed(RuntimeError):
    """A playbook exited non-zero; ``wall`` and ``start`` say when it ran."""

    def __init__(self, name, message, wall, start):
        super().__init__(message)
        self.name = name
        self.wall = wall
        self.start = start


def run_playbook(name, timeline_path, extra_vars=None, env=None):
    """Run one playbook against the sandbox inventory; returns (wall seconds, launch time)."""
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', INVENTORY,
            os.path.join(REPO_ROOT, 'playbooks', name)]
    for key, value in dict(extra_vars or {}, zdt_db_name=DATABASE).items():
        argv += ['-e', '%s=%s' % (key, value)]
    full_env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'),
                    ANSIBLE_CALLBACKS_ENABLED='zdt.bluegreen.timeline', ZDT_TIMELINE_FILE=timeline_path,
                    ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    full_env.update(env or {})
    log_path = timeline_path + '.log'
    start = time.time()
    with open(log_path, 'w', encoding='utf-8') as out:
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=REPO_ROOT, check=False)
    wall = time.time() - start
    if proc.returncode != 0:
        with open(log_path, encoding='utf-8') as handle:
            tail = handle.readlines()[-40:]
        raise PlaybookFailed(name, '%s failed (rc=%d); log: %s\n%s' % (name, proc.returncode, log_path, ''.join(tail)), wall, start)
    return wall, start


def read_timeline(path):
    if not os.path.exists(path):
        return []   # the playbook never started (an earlier step failed)
    with open(path, encoding='utf-8') as handle:
        return [json.loads(line) for line in handle if line.strip()]


# (role, task file) -> the upgrade phase it belongs to; tasks of the playbooks themselves and a
# role's main.yml belong to the phase already running.
PHASES = {
    ('zdt.bluegreen.traffic_switch', 'status'): 'plan: read the live color',
    ('zdt.bluegreen.schema_migration', 'database'): 'database',
    ('zdt.bluegreen.schema_migration', 'expand'): 'expand',
    ('zdt.bluegreen.schema_migration', 'sync'): 'triggers + backfill + verify',
    ('zdt.bluegreen.app_release', 'main'): 'start the new version',
    ('zdt.bluegreen.app_release', 'fetch'): 'start the new version',
    ('zdt.bluegreen.app_release', 'install'): 'start the new version',
    ('zdt.bluegreen.app_release', 'start_supervised'): 'start the new version',
    ('zdt.bluegreen.app_release', 'start_systemd'): 'start the new version',
    ('zdt.bluegreen.app_release', 'prune'): 'start the new version',
    ('zdt.bluegreen.smoke_test', 'main'): 'smoke test',
    ('zdt.bluegreen.traffic_switch', 'step'): 'switch + drain',
    ('zdt.bluegreen.traffic_switch', 'main'): 'switch + drain',
    ('zdt.bluegreen.app_release', 'stop'): 'stop the old version',
    ('zdt.bluegreen.schema_migration', 'drop_sync'): 'drop the triggers',
    ('zdt.bluegreen.schema_migration', 'contract'): 'contract',
}


def phase_of(event):
    """The upgrade phase a task belongs to, or None when it continues the current one."""
    if (event.get('action') or '').rsplit('.', 1)[-1] in ('include_tasks', 'include_role', 'import_tasks', 'import_role'):
        return None   # an include starts no work of its own: what it includes names the phase
    path = (event.get('path') or '').split(':')[0]
    tasks_file = os.path.splitext(os.path.basename(path))[0] if '/tasks/' in path else None
    return PHASES.get((event.get('role'), tasks_file))


def phases(events, launch):
    """Consecutive tasks of one phase, with start/end times and the figures modules reported."""
    result = []
    current = None
    first_task = None
    end_time = launch
    for event in events:
        if event['event'] == 'task_start':
            first_task = first_task or event['time']
            name = phase_of(event) or (current['name'] if current else 'plan: read the live color')
            if current is None or current['name'] != name:
                current = {'name': name, 'start': event['time'], 'end': event['time'], 'tasks': 0, 'figures': {}}
                result.append(current)
            current['tasks'] += 1
        elif event['event'] == 'task_result' and current is not None:
            current['figures'].update(event.get('figures') or {})
        end_time = event['time']
    # A phase lasts until the next one starts (the gap is Ansible's own dispatch time).
    for here, following in zip(result, result[1:]):
        here['end'] = following['start']
    if result:
        result[-1]['end'] = end_time
    return result, (first_task or launch) - launch


def measure_task_overhead(workdir):
    """Median wall time of a no-op module task on this machine: Ansible's per-task dispatch cost."""
    playbook = os.path.join(workdir, 'overhead.yml')
    with open(playbook, 'w', encoding='utf-8') as handle:
        handle.write('- name: Overhead probe\n  hosts: localhost\n  gather_facts: false\n  tasks:\n')
        for index in range(5):
            handle.write('    - name: Ping %d\n      ansible.builtin.ping:\n' % index)
    timeline = os.path.join(workdir, 'overhead.jsonl')
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'),
               ANSIBLE_CALLBACKS_ENABLED='zdt.bluegreen.timeline', ZDT_TIMELINE_FILE=timeline)
    launch = time.time()
    subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
                    '-e', 'ansible_python_interpreter=' + sys.executable, playbook],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    events = read_timeline(timeline)
    starts = [e['time'] for e in events if e['event'] == 'task_start']
    ends = [e['time'] for e in events if e['event'] == 'task_result']
    durations = [end - start for start, end in zip(starts, ends)]
    return statistics.median(durations), starts[0] - launch


def bucket_by_phase(samples, phase_list, monitor=None):
    """Requests and errors per phase from the load generator's per-second samples (and the replica's largest lag)."""
    rows = []
    for phase in phase_list:
        inside = [s for s in samples if phase['start'] <= s['t'] < phase['end']]
        rows.append({'phase': phase['name'], 'seconds': phase['end'] - phase['start'],
                     'requests': sum(s['requests'] for s in inside), 'errors': sum(s['errors'] for s in inside)})
        if monitor is not None:
            rows[-1]['replica_lag_max'] = monitor.stats(phase['start'], phase['end'])['max']
    return rows


def replica_lines(replica):
    """The report's lines about the replica: its lag over the upgrade, over time, and whether it holds the primary's data."""
    lag = replica['lag']
    if not lag['samples']:
        return ['replica: no lag samples']

    def ms(value):
        return '%.0f ms' % (value * 1000) if value is not None else '-'
    lines = ['replica lag over the upgrade: p50 %s, p99 %s, max %s (%d samples every 50 ms of a 20 ms heartbeat; %d failed reads)'
             % (ms(lag['p50']), ms(lag['p99']), ms(lag['max']), lag['samples'], replica['read_errors']),
             'replica lag over time (max per 5 s window): ' + ', '.join('t+%ds %s' % (t, ms(v)) for t, v in replica['windows'])]
    if replica.get('equal') is None:
        lines.append('replica data: not compared (%s)' % replica.get('error'))
    else:
        lines.append('replica holds exactly the primary\'s data after the upgrade: %s (CHECKSUM TABLE of %d tables)'
                     % ('yes' if replica['equal'] else 'NO', len(replica['checksums'])))
    return lines


def svg_chart(samples, phase_list, width=900, height=260):
    """Requests per second per version and errors over time, with phase boundaries."""
    if not samples:
        return '<p>no samples</p>'
    t0, t1 = samples[0]['t'], samples[-1]['t'] + 1
    peak = max(max(s['by_version'].get('1', 0) + s['by_version'].get('2', 0), s['errors']) for s in samples) or 1

    def xy(t, value):
        return (40 + (t - t0) / max(t1 - t0, 1) * (width - 60), height - 30 - value / peak * (height - 50))

    def line(key, colour):
        points = ' '.join('%.1f,%.1f' % xy(s['t'], key(s)) for s in samples)
        return '<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (colour, points)

    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">'
             % (width, height)]
    for phase in phase_list:
        x = xy(phase['start'], 0)[0]
        parts.append('<line x1="%.1f" y1="10" x2="%.1f" y2="%d" stroke="#ccc"/>' % (x, x, height - 30))
        parts.append('<text x="%.1f" y="%d" transform="rotate(-90 %.1f %d)" fill="#888">%s</text>'
                     % (x + 10, height - 35, x + 10, height - 35, html.escape(phase['name'])))
    parts.append(line(lambda s: s['by_version'].get('1', 0), '#1f77b4'))
    parts.append(line(lambda s: s['by_version'].get('2', 0), '#2ca02c'))
    parts.append(line(lambda s: s['errors'], '#d62728'))
    parts.append('<text x="40" y="%d">0 s</text><text x="%d" y="%d">%.0f s</text>' % (height - 10, width - 60, height - 10, t1 - t0))
    parts.append('<text x="5" y="20">%d/s</text>' % peak)
    parts.append('<text x="60" y="20" fill="#1f77b4">v1</text><text x="90" y="20" fill="#2ca02c">v2</text>'
                 '<text x="120" y="20" fill="#d62728">errors</text></svg>')
    return ''.join(parts)


def write_html(path, summary, phase_rows, samples, phase_list):
    lag = any('replica_lag_max' in r for r in phase_rows)

    def lag_cell(row):
        value = row.get('replica_lag_max')
        return ('<td>%s</td>' % ('-' if value is None else '%.0f' % (value * 1000))) if lag else ''
    rows = ''.join('<tr><td>%s</td><td>%.1f</td><td>%d</td><td>%d</td>%s</tr>'
                   % (html.escape(r['phase']), r['seconds'], r['requests'], r['errors'], lag_cell(r)) for r in phase_rows)
    facts = ''.join('<li>%s</li>' % html.escape(line) for line in summary)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('<!doctype html><html><head><meta charset="utf-8"><title>zdt.bluegreen demo</title></head><body>'
                     '<h1>zdt.bluegreen upgrade under load</h1><ul>%s</ul>%s'
                     '<h2>Phases</h2><table border="1" cellpadding="4"><tr><th>phase</th><th>s</th><th>requests</th>'
                     '<th>errors</th>%s</tr>%s</table></body></html>'
                     % (facts, svg_chart(samples, phase_list), '<th>replica lag max (ms)</th>' if lag else '', rows))


def share_over_time(samples, step=5):
    lines = []
    for index in range(0, len(samples), step):
        window = samples[index:index + step]
        v1 = sum(s['by_version'].get('1', 0) for s in window)
        v2 = sum(s['by_version'].get('2', 0) for s in window)
        total = v1 + v2 or 1
        lines.append('  t+%3ds  v1 %3d%%  v2 %3d%%' % (window[0]['t'] - samples[0]['t'], 100 * v1 // total, 100 * v2 // total))
    return lines


def stop_load(generator):
    """Stop the load generator (if it runs) and return its report; an empty one when it never started."""
    if generator is None:
        return loadgen.Recorder().report()
    generator.stop()
    generator.join(30)
    return generator.report()


def verify_writes(sandbox, report):
    """Check every acknowledged write against the sandbox database, starting it again if it is down.

    Always returns a count: when the database cannot be read at all, every acknowledged write is
    counted as lost (none could be shown to be held), with the reason in ``error``.
    """
    users = report['users']
    if not users:
        return {'schema': 'none', 'checked': 0, 'lost_writes': 0, 'lost_by_kind': {}, 'lost': []}
    errors = []
    for attempt in range(2):
        try:
            if attempt:
                sandbox.mariadb.start()   # it died during the run: the datadir still holds the data
            with sandbox.mariadb.root_connect(DATABASE) as conn:
                return loadgen.verify(conn, users)
        except Exception as exc:  # pylint: disable=broad-except  # any failure: try once more, then count
            errors.append(str(exc))
    return {'schema': 'unreadable', 'checked': 0, 'lost_writes': len(users), 'lost_by_kind': {'unverifiable': len(users)},
            'lost': [], 'error': '; '.join(errors)}


def main(argv=None):  # pylint: disable=too-many-locals,too-many-statements
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--users', type=int, default=100000)
    parser.add_argument('--rate', type=float, default=200.0, help='load-generator requests per second')
    parser.add_argument('--root', default=os.path.join(REPO_ROOT, '.sandbox', 'demo'))
    parser.add_argument('--report-dir', default=os.path.join(REPO_ROOT, 'report'))
    parser.add_argument('--replica', action='store_true',
                        help='run with a MariaDB replica of the database and report its lag and whether it holds the primary\'s data')
    parser.add_argument('--any-ports', action='store_true', help='free ports instead of the seed\'s 8000-8002')
    args = parser.parse_args(argv)

    preferred = {} if args.any_ports else None
    sandbox = Sandbox(args.root, preferred_ports=preferred)
    sandbox.stop_all()  # a previous run that crashed: stop what it left, by pid
    shutil.rmtree(args.root)
    sandbox = Sandbox(args.root, preferred_ports=preferred)
    if args.replica:
        sandbox.mariadb.configure(log_bin=True)
    os.makedirs(args.report_dir, exist_ok=True)
    env = {'ZDT_SANDBOX_DIR': sandbox.root}
    os.environ.update(env)
    timeline_path = os.path.join(args.report_dir, 'upgrade.jsonl')
    if os.path.exists(timeline_path):
        os.unlink(timeline_path)
    generator = None
    monitor = None
    replica = None
    failure = None
    wall, launch, overhead_per_task = 0.0, time.time(), 0.0
    try:
        try:
            log('sandbox at %s, ports %s' % (sandbox.root, sandbox.ports))
            sandbox.mariadb.start()
            if args.replica:
                sandbox.replica.start()
                log('replica on port %d follows the primary (GTID)' % sandbox.replica.port)
            log('site.yml: schema 001, v1 on blue, HAProxy')
            run_playbook('site.yml', os.path.join(args.report_dir, 'site.jsonl'), env=env)
            log('loading %d sample users' % args.users)
            seed_start = time.time()
            subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'sample', 'seed.py'), '--count', str(args.users),
                            '--quiet', '--db-socket', sandbox.mariadb.socket, '--db-user', 'root', '--db-name', DATABASE],
                           check=True)
            log('loaded in %.1f s' % (time.time() - seed_start))
            overhead_per_task, _probe_startup = measure_task_overhead(args.report_dir)

            url = 'http://127.0.0.1:%d' % sandbox.ports['lb']
            # Bounded: stops at the end of the upgrade, and in any case after 15 minutes.  It also updates
            # seeded users (ids 1..users), so rows the backfill copies are written while it copies them.
            generator = loadgen.LoadGenerator(url, rate=args.rate, duration=900, existing=args.users + 1)
            generator.start()
            if args.replica:
                monitor = LagMonitor(sandbox.mariadb, sandbox.replica).start()
            time.sleep(3)
            log('upgrade.yml under load (%.0f req/s through %s)' % (args.rate, url))
            # the whole upgrade, contract included, in one run: the demo says so explicitly (the playbook's default
            # leaves the contract to contract.yml, after a bake time)
            wall, launch = run_playbook('upgrade.yml', timeline_path, extra_vars={'zdt_defer_contract': 'false'}, env=env)
            time.sleep(3)
        except PlaybookFailed as exc:
            failure = exc
            if exc.name == 'upgrade.yml':
                wall, launch = exc.wall, exc.start
        except (Exception, KeyboardInterrupt) as exc:  # pylint: disable=broad-except  # report what was measured
            failure = exc
        if failure is not None:
            log('FAILED: %s' % str(failure).split('\n', 1)[0])
        # Success or not: stop the load, then verify against the database while the sandbox still runs.
        report = stop_load(generator)
        report['rate'] = args.rate
        generator = None
        report['verify'] = verify_writes(sandbox, report)
        if monitor is not None:
            replica = compare_replica(sandbox, monitor.stop(), report['started_at'])
            report['replica'] = replica
        loadgen.write_report(report, os.path.join(args.report_dir, 'load.json'))
    finally:
        if generator is not None:
            generator.stop()
            generator.join(30)
        if monitor is not None:
            monitor.stop()
        try:
            sandbox.stop_all()
        except SandboxError as exc:
            log('stopping the sandbox: %s' % exc)
            failure = failure or exc

    events = read_timeline(timeline_path)
    phase_list, startup = phases(events, launch)
    module_tasks = sum(p['tasks'] for p in phase_list)
    overhead = startup + module_tasks * overhead_per_task
    samples = [{'t': report['started_at'] + row['t'], 'errors': row.get('errors', 0),
                'by_version': {'1': row.get('v1', 0), '2': row.get('v2', 0)},
                'requests': row.get('v1', 0) + row.get('v2', 0)} for row in report['timeline']]
    phase_rows = bucket_by_phase(samples, phase_list, monitor)
    backfill = next((p['figures']['backfill'] for p in phase_list if 'backfill' in p['figures']), None)
    failed = report['failed']
    lost = report['verify']['lost_writes']

    summary = []
    if failure is not None:
        summary.append('DEMO FAILED: %s' % str(failure).split('\n', 1)[0])
    summary += ['upgrade.yml wall time: %.1f s (target <= 60 s)' % wall,
                'Ansible overhead (estimated): %.1f s = start-up %.1f s + %d tasks x %.2f s measured no-op task cost'
                % (overhead, startup, module_tasks, overhead_per_task)]
    summary += [line for line in loadgen.summary_lines(report) if not line.startswith(('failed requests:', 'lost writes:'))]
    if report['verify'].get('error'):
        summary.append('database unreadable (%s): all %d acknowledged writes counted as lost'
                       % (report['verify']['error'], lost))
    if backfill:
        summary.append('backfill: %s rows in %s s = %s rows/s, %s chunks' % (
            backfill.get('rows_copied'), backfill.get('seconds'), backfill.get('rows_per_second'), backfill.get('chunks')))
    if replica is not None:
        summary += replica_lines(replica)
    print('\n== zdt.bluegreen demo report ==')
    print('phase                                    seconds  requests  errors%s' % ('  replica lag max' if replica else ''))
    for row in phase_rows:
        lag = row.get('replica_lag_max')
        print('%-40s %7.1f  %8d  %6d%s' % (row['phase'], row['seconds'], row['requests'], row['errors'],
                                           '' if replica is None else '  %12s' % ('-' if lag is None else '%.0f ms' % (lag * 1000))))
    for line in summary:
        print(line)
    print('traffic share over time (5 s windows):')
    for line in share_over_time(samples):
        print(line)
    html_path = os.path.join(args.report_dir, 'demo.html')
    write_html(html_path, summary + ['failed requests: %d' % failed, 'lost writes: %d' % lost], phase_rows, samples, phase_list)
    print('HTML report: %s; load report: %s' % (html_path, os.path.join(args.report_dir, 'load.json')))
    print('failed requests: %d' % failed)
    print('lost writes: %d' % lost)
    if failure is not None:
        print('demo failed: %s' % failure, file=sys.stderr)
        return 2
    return 0 if failed == 0 and lost == 0 and (replica is None or replica.get('equal')) else 1


def compare_replica(sandbox, monitor, started_at):
    """The replica's lag figures (over the whole run and per 5 s window from ``started_at``) and whether it holds
    exactly the primary's data (the application's database)."""
    result = dict(lag=monitor.stats(), read_errors=monitor.errors, windows=[])
    if monitor.samples:
        end = monitor.samples[-1][0]
        t = started_at
        while t < end:
            window = monitor.stats(t, t + 5)
            if window['samples']:
                result['windows'].append((int(round(t - started_at)), window['max']))
            t += 5
    try:
        result['equal'], result['checksums'] = same_data(sandbox.mariadb, sandbox.replica, DATABASE)
    except Exception as exc:  # pylint: disable=broad-except  # report what was measured
        result['equal'], result['error'] = None, str(exc)
    return result


if __name__ == '__main__':
    sys.exit(main())
