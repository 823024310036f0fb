"""Run upgrade.yml in its own process group and SIGKILL it at a chosen point (molecule scenario `resume`).

    python kill_run.py --repo ROOT --sandbox DIR --name NAME --kill-at backfill|task:TEXT [--extra-vars JSON]

Starts ``ansible-playbook -i inventories/sandbox playbooks/upgrade.yml`` with the timeline callback (one
JSON line per task in DIR/NAME.timeline, output in DIR/NAME.log) and kills it:

* ``backfill``: once the checkpoint table zdt_sync_progress shows a backfill ``running`` with at least
  --min-done (share) but not all rows copied (mid-backfill);
* ``task:TEXT``: as soon as the timeline shows a task whose name contains TEXT starting (a phase boundary).

The kill is SIGKILL to the playbook's process group, then SIGKILL to every process that still carries this
run's marker in its environment: the module's ``async`` backfill job daemonizes (new session), so it
outlives ansible-playbook; here, where the controller and the database host are the same machine, a crash
takes it down too. Only Ansible processes this script started (they inherit the marker) are touched, by
pid; the services the run started (the new app release) keep running, as they would after a real crash.
Writes DIR/NAME.json with what was seen at the kill; exits 0 when the kill happened at the chosen point,
1 when the playbook ended (or the deadline passed) first.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pymysql


def progress(sandbox, database):
    try:
        conn = pymysql.connect(unix_socket=os.path.join(sandbox, 'mariadb', 'mysqld.sock'), user='root', database=database,
                               ssl_disabled=True, connect_timeout=2)
    except pymysql.MySQLError:
        return []
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                        "AND TABLE_NAME = 'zdt_sync_progress'")
            if not cur.fetchone()['n']:
                return []
            cur.execute('SELECT migration_id, sync_index, state, last_key, rows_done, rows_total FROM zdt_sync_progress')
            return cur.fetchall()
    finally:
        conn.close()


def started_tasks(timeline):
    try:
        with open(timeline, encoding='utf-8') as handle:
            lines = handle.readlines()
    except OSError:
        return []
    tasks = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line being written
        if event.get('event') == 'task_start':
            tasks.append(str(event.get('task')))
    return tasks


# Not plain 'ansible': molecule's ephemeral directory (where the app release lives) is under ~/.ansible/tmp.
ANSIBLE_PROCESS_MARKS = ('bin/ansible-playbook', 'AnsiballZ_', 'async_wrapper.py', '/ansible-tmp-', '&& sleep 0')


def is_ansible_process(cmdline):
    """Ansible's own processes (controller workers, module runs, async wrappers) - not the services a run started."""
    return any(mark in cmdline for mark in ANSIBLE_PROCESS_MARKS)


def marked_pids(marker):
    """Pids of live Ansible processes whose environment holds ``marker`` (they descend from our playbook).

    The services the run started (the app release, supervised by pid file) inherit the marker too, but they
    are the stack, not the deploy: a crashed controller leaves them running, and so does this script.
    """
    needle = marker.encode('utf-8')
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open('/proc/%s/environ' % entry, 'rb') as handle:
                if needle not in handle.read().split(b'\0'):
                    continue
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                cmdline = handle.read().replace(b'\0', b' ').decode('utf-8', 'replace').strip()
            with open('/proc/%s/stat' % entry, 'rb') as handle:
                if handle.read().rsplit(b')', 1)[1].split()[0] == b'Z':
                    continue  # a zombie waiting for its parent: already dead
        except OSError:
            continue
        if is_ansible_process(cmdline):
            found.append((int(entry), cmdline[:200]))
    return found


def kill_everything(proc, marker):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    stragglers = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = marked_pids(marker)
        if not alive:
            break
        for pid, cmdline in alive:
            if (pid, cmdline) not in stragglers:
                stragglers.append((pid, cmdline))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    left = marked_pids(marker)
    return stragglers, left


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--repo', required=True)
    parser.add_argument('--sandbox', required=True)
    parser.add_argument('--name', required=True)
    parser.add_argument('--kill-at', required=True, help='backfill | task:TEXT')
    parser.add_argument('--extra-vars', default='{}')
    parser.add_argument('--database', default='app')
    parser.add_argument('--min-done', type=float, default=0.1, help='backfill: kill once this share of the rows is copied')
    parser.add_argument('--deadline', type=float, default=300.0)
    args = parser.parse_args()

    log = os.path.join(args.sandbox, args.name + '.log')
    timeline = os.path.join(args.sandbox, args.name + '.timeline')
    marker = 'ZDT_KILL_RUN_MARK=' + uuid.uuid4().hex
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(args.repo, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(args.repo, '.collections'), ZDT_SANDBOX_DIR=args.sandbox,
               ANSIBLE_CALLBACKS_ENABLED='zdt.bluegreen.timeline', ZDT_TIMELINE_FILE=timeline,
               ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    env[marker.split('=', 1)[0]] = marker.split('=', 1)[1]
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', os.path.join(args.repo, 'inventories', 'sandbox'),
            '--extra-vars', args.extra_vars, os.path.join(args.repo, 'playbooks', 'upgrade.yml')]
    started = time.monotonic()
    with open(log, 'wb') as out:
        proc = subprocess.Popen(argv, cwd=args.repo, env=env, stdout=out, stderr=subprocess.STDOUT,  # pylint: disable=consider-using-with
                                start_new_session=True)
    seen = None
    while time.monotonic() - started < args.deadline and proc.poll() is None:
        if args.kill_at == 'backfill':
            rows = progress(args.sandbox, args.database)
            running = [r for r in rows if r['state'] == 'running' and int(r['rows_total']) * args.min_done <= int(r['rows_done']) < int(r['rows_total'])]
            if running:
                seen = {'progress': running}
                break
        elif args.kill_at.startswith('task:'):
            text = args.kill_at[len('task:'):]
            tasks = started_tasks(timeline)
            if any(text in name for name in tasks):
                seen = {'last_task_started': tasks[-1], 'tasks_started': len(tasks)}
                break
        else:
            parser.error('--kill-at must be backfill or task:TEXT')
        time.sleep(0.05)
    if seen is None:
        code = proc.poll()
        if code is None:
            kill_everything(proc, marker)
        result = {'killed': False, 'returncode': code, 'seconds': round(time.monotonic() - started, 2)}
    else:
        stragglers, left = kill_everything(proc, marker)
        result = dict(seen, killed=True, returncode=proc.returncode, seconds=round(time.monotonic() - started, 2),
                      killed_after_the_playbook=[{'pid': pid, 'cmdline': cmd} for pid, cmd in stragglers],
                      still_alive=[pid for pid, _cmd in left],
                      progress_after=[{k: str(v) for k, v in r.items()} for r in progress(args.sandbox, args.database)])
    with open(os.path.join(args.sandbox, args.name + '.json'), 'w', encoding='utf-8') as handle:
        json.dump(result, handle, indent=1, default=str)
    print(json.dumps(result, default=str))
    return 0 if result['killed'] and not result.get('still_alive') else 1


if __name__ == '__main__':
    sys.exit(main())
