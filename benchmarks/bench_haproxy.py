#!/usr/bin/env python
"""Benchmark: traffic switching methods under wrk load, and HAProxy's added latency (127.0.0.1 only).

For each load profile, ``--runs`` bounded wrk runs per method (the methods interleaved run by run), the action fired at
a third of the run:

  c50 keep-alive    50 connections, keep-alive, fast answers
  c200 close        200 connections, ``Connection: close`` (a new connection per request), fast answers
  slow + new conns  two wrk at once: 50 keep-alive connections whose answers take SLOW_SECONDS (``/?sleep=``), so
                    about 50 requests are in flight at any moment, and 150 close-mode connections, so new
                    connections arrive all the time - what a restart meets on a busy site

  baseline          no action
  haproxy_swap      the module (a real module process): blue -> green, blue drains
  canary            haproxy_swap green 10 % -> 50 % -> 100 % during the same run
  reload            haproxy_swap with state_file + master_socket: switch, dump state, hitless reload, read back
  naive -sf         the seed's way on a second, plain HAProxy: ``haproxy -D -f cfg -sf OLDPID`` (no -x)
  naive stop+start  the plain HAProxy stopped (SIGTERM), then started again

Prints requests/s and errors (socket errors + non-2xx) per method and run, then HAProxy's added p50/p99 latency against
a direct backend (wrk --latency at 1, 10 and 50 connections, median of 3 interleaved runs). Every process it starts
runs in a private sandbox directory and is stopped by pid at the end. Exits non-zero when one of our methods saw an
error or its action failed.

    .venv/bin/python benchmarks/bench_haproxy.py [--duration 6] [--threads 2] [--runs 1] [--profiles all]
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from zdt_lab.modules import run_module as run_module_process
from zdt_lab.sandbox import Sandbox, free_port, pid_alive, port_accepts
from ansible_collections.zdt.bluegreen.plugins.module_utils import haproxy_runtime as hr

BACKEND = [sys.executable, '-m', 'zdt_lab.http_backend']   # PORT VERSION
COLORS = {'blue': ['blue1'], 'green': ['green1']}
SLOW_SECONDS = 0.5
# name -> the wrk processes run at once: (connections, Connection: close, path)
PROFILES = {
    'c50 keep-alive': [(50, False, '/')],
    'c200 close': [(200, True, '/')],
    # 50 keep-alive clients whose answers take SLOW_SECONDS (about 50 requests in flight at any moment) while 150
    # close-mode clients open a new connection for every request: what a restart meets on a busy site
    'slow + new conns': [(50, False, '/?sleep=%s' % SLOW_SECONDS), (150, True, '/')],
}
NAIVE = ('naive -sf restart', 'naive stop+start')

PLAIN_CFG = """\
global
    pidfile {pidfile}
    stats socket {sock} mode 600 level admin
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    default-server inter 500ms fall 2 rise 1
frontend web
    bind 127.0.0.1:{port}
    default_backend app
backend app
    balance roundrobin
    option httpchk GET /health
    server blue1 127.0.0.1:{blue} check weight 100
    server green1 127.0.0.1:{green} check weight 100
"""


def run_module(name, args):
    """Run one of the collection's modules; its result, or RuntimeError when it failed."""
    result = run_module_process(name, args, timeout=120)
    if result.get('failed'):
        raise RuntimeError('%s failed: %s' % (name, result.get('msg')))
    return result


def parse_wrk(text):
    def num(pattern, default=0.0):
        match = re.search(pattern, text)
        return float(match.group(1)) if match else default

    def ms(value, unit):
        return float(value) * {'us': 0.001, 'ms': 1.0, 's': 1000.0}[unit]
    sock = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)', text)
    errors = dict(zip(('connect', 'read', 'write', 'timeout'), map(int, sock.groups()))) if sock else {}
    lat = dict((p, ms(v, u)) for p, v, u in re.findall(r'^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$', text, re.M))
    return {'requests': int(num(r'(\d+) requests in')), 'rps': num(r'Requests/sec:\s+([\d.]+)'),
            'non2xx': int(num(r'Non-2xx or 3xx responses: (\d+)')), 'socket_errors': errors,
            'p50': lat.get('50'), 'p99': lat.get('99')}


def wrk_argv(port, connections, duration, threads, close=False, latency=False, path='/'):
    # --timeout well above the slow answers: a request counts as failed only when it really fails
    argv = ['wrk', '-t%d' % min(threads, connections), '-c%d' % connections, '-d%ds' % duration, '--timeout', '10s']
    if close:
        argv += ['-H', 'Connection: close']
    if latency:
        argv.append('--latency')
    argv.append('http://127.0.0.1:%d%s' % (port, path))
    return argv


def wrk(port, connections, duration, threads, close=False, latency=False, action=None, action_at=None, path='/'):
    return wrk_load(port, [(connections, close, path)], duration, threads, latency=latency, action=action, action_at=action_at)


def wrk_load(port, loads, duration, threads, latency=False, action=None, action_at=None):
    """One wrk process per (connections, close, path) in loads, all at once, and the action at action_at: the figures
    summed over the wrk processes (latency percentiles only for a single load)."""
    procs = [subprocess.Popen(wrk_argv(port, conns, duration, threads, close, latency, path),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for conns, close, path in loads]
    note = {}
    if action is not None:
        def fire():
            time.sleep(action_at)
            started = time.monotonic()
            try:
                action()
                note['action_s'] = time.monotonic() - started
            except Exception as exc:  # reported, not hidden
                note['action_error'] = str(exc)
        worker = threading.Thread(target=fire)
        worker.start()
    results = [parse_wrk(proc.communicate(timeout=duration + 60)[0].decode()) for proc in procs]
    if action is not None:
        worker.join(120)
    result = results[0]
    for other in results[1:]:
        result = {'requests': result['requests'] + other['requests'], 'rps': result['rps'] + other['rps'],
                  'non2xx': result['non2xx'] + other['non2xx'], 'p50': None, 'p99': None,
                  'socket_errors': dict((k, result['socket_errors'].get(k, 0) + other['socket_errors'].get(k, 0))
                                        for k in set(result['socket_errors']) | set(other['socket_errors']))}
    result.update(note)
    return result


class Bench:
    def __init__(self, args):
        self.args = args
        self.root = tempfile.mkdtemp(prefix='zdt-bench-haproxy-')
        self.sb = Sandbox(self.root, preferred_ports={})
        self.hp = self.sb.haproxy
        self.blue, self.green = free_port(), free_port()
        self.plain_port = free_port()
        self.plain_dir = os.path.join(self.root, 'plain')
        os.makedirs(self.plain_dir)
        self.plain_pidfile = os.path.join(self.plain_dir, 'haproxy.pid')
        self.plain_cfg = os.path.join(self.plain_dir, 'haproxy.cfg')
        self.plain_pids = set()

    # ---- setup / teardown
    def start(self):
        for name, port, version in (('bench-blue', self.blue, '1'), ('bench-green', self.green, '2')):
            self.sb.process(name).start(BACKEND + [str(port), version], port=port)
        self.hp.start(self.hp.render_config(backends={'app': [('blue1', self.blue), ('green1', self.green)]}))
        with open(self.plain_cfg, 'w') as handle:
            handle.write(PLAIN_CFG.format(pidfile=self.plain_pidfile, sock=os.path.join(self.plain_dir, 'admin.sock'),
                                          port=self.plain_port, blue=self.blue, green=self.green))
        self.plain_restart()
        self.wait_up(self.hp.stats_socket)
        self.wait_up(os.path.join(self.plain_dir, 'admin.sock'))

    def plain_pid(self):
        with open(self.plain_pidfile) as handle:
            return int(handle.read().split()[0])

    def plain_restart(self):
        """The seed's switch: a new process takes over with -sf, no socket transfer (-x)."""
        argv = ['haproxy', '-D', '-f', self.plain_cfg]
        if os.path.exists(self.plain_pidfile) and self.ours(self.plain_pid()):
            argv += ['-sf', str(self.plain_pid())]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.plain_pids.add(self.plain_pid())
        deadline = time.monotonic() + 10
        while not port_accepts(self.plain_port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def plain_stop_start(self):
        """The other naive way: stop HAProxy (SIGTERM: it closes every connection at once), then start it again."""
        pid = self.plain_pid()
        if not self.ours(pid):
            raise RuntimeError('the plain HAProxy (pid %d) is not running' % pid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.plain_pids.discard(pid)
        os.unlink(self.plain_pidfile)   # a fresh start: no -sf to a pid that may belong to another process by now
        self.plain_restart()

    def wait_up(self, sock, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with hr.RuntimeClient(sock, timeout=2) as client:
                    if all(s.passing for s in client.servers('app').values()):
                        return
            except hr.HAProxyError:
                pass
            time.sleep(0.1)
        raise RuntimeError('backends not up behind %s' % sock)

    def ours(self, pid):
        """True while pid is one of the plain HAProxy processes this run started (a pid of a process that has exited
        may have been given to another one since)."""
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as handle:
                return self.plain_cfg.encode() in handle.read().split(b'\0')
        except OSError:
            return False

    def stop(self):
        for pid in self.plain_pids:
            if self.ours(pid):
                os.kill(pid, signal.SIGTERM)
        self.sb.stop_all()
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- actions
    def swap_args(self, **kw):
        args = {'socket': self.hp.stats_socket, 'backend': 'app', 'colors': COLORS, 'active': 'green'}
        args.update(kw)
        return args

    def reset(self):
        run_module('haproxy_swap', self.swap_args(active='blue'))

    def act_swap(self):
        run_module('haproxy_swap', self.swap_args())

    def act_canary(self):
        step = self.args.duration / 6.0
        for weight in (10, 50, 100):
            run_module('haproxy_swap', self.swap_args(weight=weight))
            time.sleep(step)

    def act_reload(self):
        run_module('haproxy_swap', self.swap_args(state_file=self.hp.state_file, master_socket=self.hp.master_socket))

    # ---- runs
    def methods(self):
        return (('baseline', self.hp.frontend_port, None),
                ('haproxy_swap', self.hp.frontend_port, self.act_swap),
                ('canary 10/50/100', self.hp.frontend_port, self.act_canary),
                ('swap+reload (master)', self.hp.frontend_port, self.act_reload),
                ('naive -sf restart', self.plain_port, self.plain_restart),
                ('naive stop+start', self.plain_port, self.plain_stop_start))

    def run(self):
        d, t = self.args.duration, self.args.threads
        rows = []
        for label in self.args.profiles:
            for run in range(1, self.args.runs + 1):
                for method, port, action in self.methods():
                    self.reset()
                    self.wait_up(self.hp.stats_socket)
                    self.wait_up(os.path.join(self.plain_dir, 'admin.sock'))
                    res = wrk_load(port, PROFILES[label], d, t, action=action, action_at=d / 3.0)
                    res.update(profile=label, method=method, run=run)
                    rows.append(res)
                    print('  %-15s run %d  %-22s %9.0f req/s  errors %-5d %s'
                          % (label, run, method, res['rps'], errors_of(res), detail(res)), flush=True)
        # direct and through HAProxy interleaved, LATENCY_REPS times each: the median of each figure (one
        # scheduling hiccup on this shared machine otherwise decides a p99)
        lat = []
        if self.args.latency:
            for conns in (1, 10, 50):
                runs = {'direct': [], 'via': []}
                for _rep in range(LATENCY_REPS):
                    runs['direct'].append(wrk(self.blue, conns, 3, 1 if conns == 1 else self.args.threads, latency=True))
                    runs['via'].append(wrk(self.hp.frontend_port, conns, 3, 1 if conns == 1 else self.args.threads, latency=True))
                lat.append((conns, median_latency(runs['direct']), median_latency(runs['via'])))
        return rows, lat


LATENCY_REPS = 3


def median_latency(results):
    """Median p50 and p99 (ms) over wrk results; None where wrk printed no percentile."""
    out = {}
    for key in ('p50', 'p99'):
        values = sorted(r[key] for r in results if r.get(key) is not None)
        out[key] = values[len(values) // 2] if values else None
    return out


def _fmt(value):
    return '%12.3f' % value if value is not None else '%12s' % 'n/a'


def _added(via, direct):
    return '%14.3f' % (via - direct) if via is not None and direct is not None else '%14s' % 'n/a'


def errors_of(res):
    return sum(res['socket_errors'].values()) + res['non2xx']


def detail(res):
    parts = ['%s %d' % (k, v) for k, v in sorted(res['socket_errors'].items()) if v]
    if res['non2xx']:
        parts.append('non-2xx %d' % res['non2xx'])
    if 'action_s' in res:
        parts.append('action took %.2fs' % res['action_s'])
    if 'action_error' in res:
        parts.append('ACTION FAILED: %s' % res['action_error'])
    return ', '.join(parts)


def summary(rows):
    """One line per profile and method: req/s (median over the runs) and the errors of every run."""
    out = []
    keys = []
    for res in rows:
        if (res['profile'], res['method']) not in keys:
            keys.append((res['profile'], res['method']))
    for profile, method in keys:
        runs = [r for r in rows if r['profile'] == profile and r['method'] == method]
        rps = sorted(r['rps'] for r in runs)[len(runs) // 2]
        errors = [errors_of(r) for r in runs]
        failing = sum(1 for e in errors if e)
        out.append((profile, method, rps, errors, '%d of %d runs' % (failing, len(runs)) if failing else ''))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--duration', type=int, default=6, help='seconds per wrk run (default 6)')
    parser.add_argument('--threads', type=int, default=2, help='wrk threads (default 2)')
    parser.add_argument('--runs', type=int, default=1, help='runs per profile and method (default 1)')
    parser.add_argument('--profiles', default='all',
                        help='comma-separated among: %s (default all)' % ', '.join(PROFILES))
    parser.add_argument('--no-latency', dest='latency', action='store_false', help='skip the latency figures')
    args = parser.parse_args()
    args.profiles = list(PROFILES) if args.profiles == 'all' else [p.strip() for p in args.profiles.split(',')]
    unknown = [p for p in args.profiles if p not in PROFILES]
    if unknown or args.runs < 1:
        parser.error('unknown profile %s (known: %s)' % (', '.join(unknown), ', '.join(PROFILES)) if unknown else '--runs must be >= 1')
    if shutil.which('wrk') is None or shutil.which('haproxy') is None:
        sys.exit('needs wrk and haproxy on PATH')
    bench = Bench(args)
    try:
        bench.start()
        out = subprocess.run(['haproxy', '-v'], stdout=subprocess.PIPE, check=False).stdout.decode().splitlines()[0]
        print('%s; wrk -t%d --timeout 10s, %d s per run, action at %.1f s, %d run(s) per method; slow answers take %s s; %d CPUs'
              % (out, args.threads, args.duration, args.duration / 3.0, args.runs, SLOW_SECONDS, os.cpu_count()))
        rows, lat = bench.run()
    finally:
        bench.stop()
    print('\n%-16s %-22s %10s  %-18s %s' % ('profile', 'method', 'req/s', 'errors per run', 'runs with errors'))
    for profile, method, rps, errors, failing in summary(rows):
        print('%-16s %-22s %10.0f  %-18s %s' % (profile, method, rps, ' '.join(str(e) for e in errors), failing))
    if lat:
        print('\nlatency (wrk --latency, 3 s runs, keep-alive, median of %d interleaved runs): direct backend vs through HAProxy'
              % LATENCY_REPS)
        print('%-6s %12s %12s %12s %12s %14s %14s'
              % ('conns', 'direct p50', 'haproxy p50', 'direct p99', 'haproxy p99', 'added p50 ms', 'added p99 ms'))
        for conns, direct, via in lat:
            print('%-6d %s %s %s %s %s %s' % (conns, _fmt(direct['p50']), _fmt(via['p50']), _fmt(direct['p99']), _fmt(via['p99']),
                                              _added(via['p50'], direct['p50']), _added(via['p99'], direct['p99'])))
    ours = [r for r in rows if r['method'] not in NAIVE]
    naive = [r for r in rows if r['method'] in NAIVE]
    bad = [r for r in ours if errors_of(r) or 'action_error' in r]
    print('\nerrors in our methods: %d in %d runs; in the naive ways: %d in %d runs'
          % (sum(errors_of(r) for r in ours), len(ours), sum(errors_of(r) for r in naive), len(naive)))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
