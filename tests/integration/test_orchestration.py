"""upgrade.yml as an operator runs it on a real estate, on one private sandbox (the sample service), in order:

- ``--check --diff`` on the fresh stack prints the plan and changes nothing (schema, triggers, HAProxy, processes);
- the backfill's async job killed -9 mid-copy: reported as killed inside the rescue, traffic stays on the old color;
- a whole run killed -9 mid-backfill leaves its run lock; a run with a short ``zdt_lock_stale_after`` takes it over;
- that run goes through ansible-runner as AWX runs a job (extra vars from a file, blank survey answers, no terminal),
  with a backfill held back by the throttle for more than 400 poll rounds, its progress lines as job events, a
  second run (rollback.yml) refused up front while it holds the lock, and a straggler request on the old color cut
  at the drain deadline (a 502, reported) without a rollback; the expand it runs is the one the check-mode plan said;
- ``--check`` on the upgraded stack plans nothing to do, contract.yml --check lists the contract, nothing changes;
- site.yml after the load balancer lost its admin socket (a reboot) restarts it from its state file, deploys nothing.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pymysql
import pytest

from zdt_lab.http_probe import accepts, get as http_get
from zdt_lab.sandbox import Sandbox
from zdt_lab.waiting import wait_for

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
INVENTORY = os.path.join(REPO_ROOT, 'inventories', 'sandbox')
RECAP = re.compile(r'^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)
# sub-second polling keeps the throttled backfills short; the same values an operator could pass
FAST = {'zdt_poll_interval': '0.02', 'zdt_progress_interval': '1', 'zdt_canary_steps': '100'}


def ansible_env(stack):
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                ANSIBLE_FORCE_COLOR='0', PATH=BIN + os.pathsep + os.environ.get('PATH', ''), ZDT_SANDBOX_DIR=stack.root)


def playbook_argv(name, extra=None, *args):
    argv = [os.path.join(BIN, 'ansible-playbook'), '-i', INVENTORY, os.path.join('playbooks', name)] + list(args)
    for key, value in (extra or {}).items():
        argv += ['-e', '%s=%s' % (key, value)]
    return argv


def run(stack, name, extra=None, *args, expect=0):
    proc = subprocess.run(playbook_argv(name, extra, *args), cwd=REPO_ROOT, env=ansible_env(stack), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=600, check=False)
    out = proc.stdout.decode(errors='replace')
    if expect is not None:
        assert (proc.returncode == 0) == (expect == 0), out[-8000:]
    return out


def changed(out):
    return {m.group(1): int(m.group(3)) for m in RECAP.finditer(out)}


def snapshot(stack):
    """What a run could change: both tables' columns, the triggers, the zdt_ bookkeeping rows, HAProxy's servers and
    which app ports answer."""
    with stack.mariadb.root_connect('app') as conn, conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'app' "
                    "ORDER BY TABLE_NAME, ORDINAL_POSITION")
        columns = cur.fetchall()
        cur.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'app' ORDER BY 1")
        triggers = cur.fetchall()
        cur.execute("SELECT migration_id, phase, status FROM zdt_migration_state ORDER BY 1, 2")
        state = cur.fetchall()
    servers = stack.haproxy.admin_command('show servers state app')
    servers = sorted(tuple(line.split()[3:8]) for line in servers.splitlines() if line[:1].isdigit())
    answering = {}
    for color in ('blue', 'green'):
        try:
            answering[color] = http_get(stack.ports[color], '/health', timeout=2)[:2]
        except OSError:
            answering[color] = None
    return dict(columns=columns, triggers=triggers, state=state, servers=servers, answering=answering)


class Throttle(object):
    """Two sessions sleeping in the database: Threads_running stays above the backfill's limit of 1
    (schema_migration_max_threads_running), so the copy waits between chunks until they end."""

    def __init__(self, stack):
        self.stack, self.threads, self.ids = stack, [], []

    def __enter__(self):
        for _session in range(2):
            conn = self.stack.mariadb.root_connect()
            self.ids.append(conn.thread_id())
            thread = threading.Thread(target=self._sleep, args=(conn,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    @staticmethod
    def _sleep(conn):
        try:
            with conn.cursor() as cur:
                # far longer than any machine takes to reach the backfill wait and look 410 times: release() ends it
                cur.execute('SELECT SLEEP(1800)')
        except pymysql.err.OperationalError:
            pass   # KILL QUERY: the end of the throttle
        finally:
            conn.close()

    def release(self):
        with self.stack.mariadb.root_connect() as conn, conn.cursor() as cur:
            for thread_id in self.ids:
                try:
                    cur.execute('KILL QUERY %d' % thread_id)
                except pymysql.err.OperationalError as exc:
                    if exc.args[0] != 1094:   # unknown thread: that session already ended
                        raise
        for thread in self.threads:
            thread.join(10)
        self.ids = []

    def __exit__(self, *exc):
        if self.ids:
            self.release()


def processes_of(stack, needle):
    """Pids of this stack's processes (their environment holds its ZDT_SANDBOX_DIR) whose command line holds needle."""
    marker = ('ZDT_SANDBOX_DIR=%s' % stack.root).encode()
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/environ' % pid, 'rb') as handle:
                if marker not in handle.read().split(b'\0'):
                    continue
            with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                if needle.encode() in handle.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def backfill_running(stack):
    """The sync job is copying: its checkpoint row says so."""
    with stack.mariadb.root_connect('app') as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES LIKE 'zdt_sync_progress'")
        if not cur.fetchone():
            return False
        cur.execute("SELECT COUNT(*) FROM zdt_sync_progress WHERE state = 'running'")
        return cur.fetchone()[0] > 0


def kill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope='module')
def stack():
    sandbox = Sandbox(tempfile.mkdtemp(prefix='zdt-orch-'), preferred_ports={})
    try:
        sandbox.mariadb.start()
        run(sandbox, 'site.yml')
        subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'sample', 'seed.py'), '--count', '3000', '--quiet',
                        '--db-socket', sandbox.mariadb.socket, '--db-user', 'root', '--db-name', 'app'], check=True)
        sandbox.plans = {}
        yield sandbox
    finally:
        sandbox.stop_all()
        shutil.rmtree(sandbox.root, ignore_errors=True)


def test_check_mode_on_a_fresh_stack_plans_and_changes_nothing(stack):
    before = snapshot(stack)
    out = run(stack, 'upgrade.yml', FAST, '--check', '--diff')
    assert 'CHECK MODE, nothing was changed' in out, out[-6000:]
    plan = re.search(r'CHECK MODE, nothing was changed\. (.*?)"', out, re.S).group(1)
    # the live state read for real: version 1 on blue, so version 2 goes to green (not a redeploy)
    assert 'version 2 goes to green' in plan, plan
    assert re.search(r'Expand: \S', plan) and 'Expand: nothing' not in plan, plan
    assert re.search(r'\d+ rows to copy', plan) and 'Traffic: steps 100 % to green' in plan, plan
    assert 'Stop blue' in plan and 'Contract: deferred to contract.yml' in plan, plan
    assert 'TASK [Report the rollback]' not in out and 'TASK [Put the traffic back' not in out   # no rescue
    for name in ('site.yml', 'rollback.yml'):
        run(stack, name, None, '--check', '--diff')
    # an AWX survey's release field left blank: refused before the lock, not halfway through with a wrong artifact
    out = run(stack, 'upgrade.yml', {'zdt_version': ''}, expect=1)
    assert 'zdt_version is set but empty' in out and 'zdt_default_version (2)' in out, out[-3000:]
    assert snapshot(stack) == before
    assert not processes_of(stack, 'AnsiballZ_mysql_trigger_sync')
    stack.plans['fresh'] = plan


def test_a_killed_backfill_job_is_reported_in_the_rescue(stack):
    before = snapshot(stack)
    with Throttle(stack):
        proc = subprocess.Popen(playbook_argv('upgrade.yml', dict(FAST, schema_migration_max_threads_running=1), '-v'),
                                cwd=REPO_ROOT, env=dict(ansible_env(stack), ANSIBLE_CALLBACK_RESULT_FORMAT='json'),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: backfill_running(stack), 120)   # the backfill to start
            job = wait_for(lambda: processes_of(stack, 'mysql_trigger_sync'), 30)   # the backfill job
            kill(job)   # the async wrapper and the module: the job dies, ansible-playbook lives on
            out = proc.communicate(timeout=300)[0].decode(errors='replace')
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode != 0, out[-6000:]
    assert re.search(r'backfill job \S+ of migration 2 was killed: its checkpoint stopped at', out), out[-6000:]
    assert 'Rolled back: traffic on blue (version 1)' in out, out[-6000:]
    # this first real run did what the check-mode plan said: the same expand statements, the same triggers
    result = re.search(r'TASK \[zdt\.bluegreen\.schema_migration : Expand the schema for migration 2\].*?\n'
                       r'changed: \[[^\]]*\] => (\{[^\n]*\})\n', out, re.S)
    assert result, out[-6000:]
    planned = re.search(r'Expand: (.*?)\.\s+Sync: triggers (.*?); (\d+) rows to copy', stack.plans['fresh'], re.S)
    assert ' '.join(planned.group(1).split()) == ' '.join('; '.join(json.loads(result.group(1))['statements']).split())
    with stack.mariadb.root_connect('app') as conn, conn.cursor() as cur:
        cur.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'app'")
        # the backward triggers come once the copy is done (they would fire for every copied row)
        stack.plans['triggers'] = sorted(planned.group(2).replace(' ', '').split(','))
        assert sorted(r[0] for r in cur.fetchall()) == [n for n in stack.plans['triggers'] if '_fwd_' in n]
        cur.execute('SELECT COUNT(*) FROM users')
        assert int(planned.group(3)) == cur.fetchone()[0]
    after = snapshot(stack)
    assert after['servers'] == before['servers'] and after['answering'] == before['answering']
    assert http_get(stack.ports['lb'], '/health')[:2] == (200, '1')
    with stack.mariadb.root_connect('app') as conn, conn.cursor() as cur:
        cur.execute('SELECT COUNT(*) FROM zdt_run_lock')
        assert cur.fetchone()[0] == 0   # the rescue gave the run lock back


def test_a_killed_run_leaves_a_lock_that_goes_stale(stack):
    with Throttle(stack):
        proc = subprocess.Popen(playbook_argv('upgrade.yml', dict(FAST, schema_migration_max_threads_running=1)),
                                cwd=REPO_ROOT, env=ansible_env(stack), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: processes_of(stack, 'mysql_trigger_sync'), 120)   # the (throttled) backfill job runs
        finally:
            # ansible-playbook, its workers, the async wrapper and the module: nothing of the run is left
            kill([proc.pid] + processes_of(stack, 'ansible-playbook') + processes_of(stack, 'mysql_trigger_sync'))
            proc.wait(30)
    with stack.mariadb.root_connect('app') as conn, conn.cursor() as cur:
        cur.execute('SELECT holder FROM zdt_run_lock')
        rows = cur.fetchall()
    assert len(rows) == 1, rows   # nobody gave it back
    assert rows[0][0].endswith(':%d' % proc.pid), (rows, proc.pid)   # user@host:pid of the killed ansible-playbook
    stack.dead_holder = rows[0][0]


def test_upgrade_through_ansible_runner_as_awx_runs_it(stack):
    import ansible_runner  # pylint: disable=import-outside-toplevel

    events, starts = [], {}

    def looks(event):
        found = re.search(r'\((\d+) looks at the job\)', event.get('stdout', '')) if event.get('event') == 'verbose' else None
        return int(found.group(1)) if found else 0

    def on_event(event):
        events.append(event)
        if event.get('event') == 'playbook_on_task_start':
            starts.setdefault(event['event_data'].get('task'), time.monotonic())
        return True

    data_dir = tempfile.mkdtemp(prefix='runner-', dir=stack.root)
    # AWX passes the survey as extra vars in a file: the release (a required field), and the optional fields left
    # blank arrive as empty strings
    extravars = dict(zdt_version='2', zdt_migration='', zdt_canary_steps='', zdt_defer_contract='', zdt_drain_timeout='3',
                     zdt_poll_interval='0.02', zdt_progress_interval='4', zdt_lock_stale_after='2',
                     schema_migration_max_threads_running=1)
    envvars = {k: v for k, v in ansible_env(stack).items() if k.startswith(('ANSIBLE_', 'ZDT_')) or k == 'PATH'}
    straggler = {}

    def hold_a_request_on_blue():
        try:
            straggler['status'] = http_get(stack.ports['lb'], '/api/users?limit=1&sleep=25', timeout=40)[0]
        except OSError as exc:
            straggler['status'] = repr(exc)

    with Throttle(stack) as throttle:
        thread, runner = ansible_runner.run_async(
            private_data_dir=data_dir, project_dir=REPO_ROOT, playbook=os.path.join(REPO_ROOT, 'playbooks', 'upgrade.yml'),
            inventory=INVENTORY, extravars=extravars, envvars=envvars, event_handler=on_event, quiet=True, timeout=600)
        wait_task = 'Wait for the backfill and verify, printing a progress line every progress_interval seconds'
        wait_for(lambda: wait_task in starts, 180)   # the backfill wait to start
        # a second run (another AWX template) while this one holds the lock: refused up front, naming the holder
        out = run(stack, 'rollback.yml', expect=1)
        assert re.search(r'another run holds lock zdt\.bluegreen: \S.*, started \d{4}-\d\d-\d\d', out), out[-4000:]
        assert all(n == 0 for n in changed(out).values()), changed(out)
        # the backfill waits on the throttle meanwhile; released once the wait has looked at the job 410 times
        # (a progress line costs two module runs, about 0.8 s on an idle machine and seconds on a loaded one: one every
        # 4 s leaves most of the time to the rounds)
        wait_for(lambda: max([looks(e) for e in events] + [0]) >= 410, 480)   # 410 looks at the backfill job
        throttle.release()
        wait_for(lambda: 'Tell the run lock this run is alive, before the switch' in starts, 180)   # the switch
        holder = threading.Thread(target=hold_a_request_on_blue)
        holder.start()
        thread.join(300)
        holder.join(60)
    assert runner.status == 'successful', runner.stdout.read()[-8000:]
    stdout = runner.stdout.read()

    # the stale lock of the killed run was taken over, with a warning naming it
    assert 'took over lock zdt.bluegreen from a run that stopped sending heartbeats: %s' % stack.dead_holder in stdout, stdout[-8000:]
    # progress lines as job events (verbose events of the wait task's run), and the wait survived 400+ rounds
    progress = [e['stdout'] for e in events if e.get('event') == 'verbose' and 'rows' in e.get('stdout', '')]
    assert any(re.search(r'migration 2 backfill: sync\[0\] running: \d+/\d+ rows', line) for line in progress), progress[:5]
    waited = [e['event_data']['res'] for e in events if e.get('event') == 'runner_on_ok'
              and e['event_data'].get('task') == wait_task]
    assert waited and waited[0]['polls'] >= 410, waited
    print('backfill wait: %d poll rounds in %.1f s, %d progress events' % (waited[0]['polls'], waited[0]['waited'], len(progress)))
    # the straggler on blue was cut at the 3 s drain deadline and reported; the run did not roll back
    assert straggler.get('status') == 502, straggler
    assert re.search(r'1 request\(s\) still in flight on blue after 3 s were cut and answered with 502', stdout), stdout[-6000:]
    assert http_get(stack.ports['lb'], '/health')[:2] == (200, '2')
    assert 'once version 2 has baked, run contract.yml' in stdout
    assert [r[0] for r in snapshot(stack)['triggers']] == stack.plans['triggers']   # all the plan named, until the contract


def test_check_mode_on_the_upgraded_stack_plans_nothing_to_do(stack):
    before = snapshot(stack)
    out = run(stack, 'upgrade.yml', FAST, '--check', '--diff')
    assert 'CHECK MODE, nothing was changed' in out and 'Traffic: already switched' in out, out[-6000:]
    assert 'goes to blue' not in out   # not planned as a redeploy to the other color
    assert all(n == 0 for n in changed(out).values()), changed(out)
    out = run(stack, 'contract.yml', {'zdt_version': '2'}, '--check', '--diff')
    assert 'DROP' in out and 'address_line_1' in out, out[-6000:]
    assert snapshot(stack) == before


def test_site_after_the_load_balancer_lost_its_admin_socket(stack):
    """A load balancer reboot: HAProxy gone, /run emptied; the state file on disk still says green."""
    pid = stack.haproxy.pid
    assert pid
    kill([pid])   # the master; its workers follow it
    wait_for(lambda: not stack.haproxy.running, 20)   # HAProxy to stop
    wait_for(lambda: not accepts(stack.ports['lb'], timeout=1), 20)   # the frontend port to close
    for path in (stack.haproxy.stats_socket, stack.haproxy.master_socket):
        if os.path.exists(path):
            os.unlink(path)
    out = run(stack, 'site.yml')
    hosts = changed(out)
    assert hosts['blue1'] == 0 and hosts['green1'] == 0 and hosts['sandbox-lb'] > 0, hosts
    assert http_get(stack.ports['lb'], '/health')[:2] == (200, '2')
    with pytest.raises(OSError):   # blue was not started with version 1
        http_get(stack.ports['blue'], '/health', timeout=2)
    assert all(n == 0 for n in changed(run(stack, 'site.yml')).values())
