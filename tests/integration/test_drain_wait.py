"""drain_wait against a real HAProxy 2.6 from the sandbox with long-lived requests in flight."""
import socket
import threading
import time

import pytest

from zdt_lab.unix_socket_server import UnixSocketServer

COLORS = {'blue': ['blue1'], 'green': ['green1']}


def blue_only(lb):
    """blue1 ready and alone taking traffic, green1 drained."""
    lb.reset()
    with lb.client() as client:
        client.set_server_state('app', 'green1', 'drain')


class Slow:
    """n requests of `seconds` each, in flight through the load balancer."""

    def __init__(self, lb, n, seconds, backend='app'):
        self.results = []
        self.finished = []
        self.threads = [threading.Thread(target=self._one, args=(lb, seconds, backend), daemon=True) for _request in range(n)]
        for thread in self.threads:
            thread.start()

    def _one(self, lb, seconds, backend):
        try:
            self.results.append(lb.get('/?sleep=%s' % seconds, backend=backend))
        except OSError as exc:
            self.results.append(('error', str(exc)))
        self.finished.append(time.monotonic())

    def join(self):
        for thread in self.threads:
            thread.join(30)
        return self.results


def wait_scur(lb, server, count, timeout=5, backend='app'):
    deadline = time.monotonic() + timeout
    while lb.servers(backend)[server].scur < count:
        assert time.monotonic() < deadline, 'requests never reached %s' % server
        time.sleep(0.02)


def drain(run_module, lb, check_mode=False, diff=False, **kw):
    args = {'socket': lb.socket, 'backend': 'app'}
    args.update(kw)
    return run_module('drain_wait', args, check_mode=check_mode, diff=diff)


def test_returns_only_after_in_flight_requests_finish(lb, run_module):
    blue_only(lb)
    slow = Slow(lb, 3, 2)
    wait_scur(lb, 'blue1', 3)
    with lb.client() as client:   # green takes new traffic; blue1 is still `ready`: drain_wait must drain it itself
        client.set_server_state('app', 'green1', 'ready')
    started = time.monotonic()
    result = drain(run_module, lb, colors=COLORS, color='blue', timeout=20, interval=0.2, diff=True)
    ended = time.monotonic()
    results = slow.join()
    assert not result.get('failed'), result
    assert results == [(200, '1')] * 3                         # the drained requests were answered, not cut
    assert max(slow.finished) <= ended                          # it returned only after they finished
    assert 0.8 <= result['waited'] <= 10 and ended - started >= 0.8
    assert result['sessions'] == {'blue1': 0} and result['shutdown'] is False and result['changed'] is True
    assert result['diff'] == {'before': {'servers': {'blue1': 'ready'}}, 'after': {'servers': {'blue1': 'maint'}}}
    assert lb.states()['blue1']['admin_state'] == 'maint'
    assert lb.get() == (200, '2')
    again = drain(run_module, lb, colors=COLORS, color='blue', timeout=5, interval=0.2)
    assert again['changed'] is False and again['sessions'] == {'blue1': 0}


@pytest.mark.parametrize('backend', ['parked', 'parked_nc'])
def test_drains_servers_declared_disabled_in_the_configuration(lb, run_module, backend):
    """A `disabled` server made ready reads 4 (the configuration bit stays): it is ready, so drain_wait drains it,
    waits for its in-flight requests and puts it to maint (5), as for any other server."""
    lb.reload_from_config()
    colors = {'blue': ['blue1'], 'green': ['green1', 'green2']}
    with lb.client() as client:   # green out of its configuration maintenance, blue drained
        for name in ('green1', 'green2'):
            client.set_server_state(backend, name, 'ready')
        client.set_server_state(backend, 'blue1', 'drain')
    lb.wait_all_up(backend)
    slow = Slow(lb, 2, 2, backend=backend)   # roundrobin: one request on each green server
    wait_scur(lb, 'green1', 1, backend=backend)
    wait_scur(lb, 'green2', 1, backend=backend)
    with lb.client() as client:   # blue takes new traffic again
        client.set_server_state(backend, 'blue1', 'ready')
    started = time.monotonic()
    result = drain(run_module, lb, backend=backend, colors=colors, color='green', timeout=20, interval=0.2, diff=True)
    ended = time.monotonic()
    assert not result.get('failed'), result
    assert slow.join() == [(200, '2')] * 2
    assert max(slow.finished) <= ended and result['waited'] >= 0.5, result
    assert result['changed'] is True and result['sessions'] == {'green1': 0, 'green2': 0}
    assert result['diff'] == {'before': {'servers': {'green1': 'ready', 'green2': 'ready'}},
                              'after': {'servers': {'green1': 'maint', 'green2': 'maint'}}}
    with lb.client() as client:
        bits = dict((row['srv_name'], row['srv_admin_state']) for row in client.show_servers_state(backend))
    assert bits == {'blue1': 0, 'green1': 5, 'green2': 5}
    assert lb.get(backend=backend) == (200, '1')
    assert ended - started >= 0.5


def test_maint_false_leaves_drain(lb, run_module):
    blue_only(lb)
    with lb.client() as client:
        client.set_server_state('app', 'green1', 'ready')
    result = drain(run_module, lb, servers=['blue1'], timeout=5, interval=0.2, maint=False)
    assert result['changed'] and lb.states()['blue1']['admin_state'] == 'drain'


def test_timeout_fails_with_per_server_counts(lb, run_module):
    blue_only(lb)
    slow = Slow(lb, 2, 3)
    wait_scur(lb, 'blue1', 2)
    started = time.monotonic()
    result = drain(run_module, lb, servers=['blue1'], timeout=0.6, interval=0.2)
    assert time.monotonic() - started < 2.5
    assert result['failed'] and 'blue1: 2 current, 0 queued' in result['msg'], result
    assert result['sessions'] == {'blue1': 2}
    assert lb.states()['blue1']['admin_state'] == 'drain'   # drained, not maint, nothing cut
    assert slow.join() == [(200, '1')] * 2


def test_timeout_shutdown_cuts_sessions_and_warns(lb, run_module):
    blue_only(lb)
    slow = Slow(lb, 2, 6)
    wait_scur(lb, 'blue1', 2)
    started = time.monotonic()
    result = drain(run_module, lb, servers=['blue1'], timeout=0.5, interval=0.1, on_timeout='shutdown')
    results = slow.join()
    assert not result.get('failed'), result
    assert time.monotonic() - started < 5                      # did not wait for the 6 s requests
    assert result['shutdown'] is True and result['sessions'] == {'blue1': 0}
    assert 'shut down the sessions of blue1' in str(result.get('warnings'))
    assert all(r[0] != 200 for r in results), results          # HTTP mode: in-flight requests get 502 (or a cut)
    assert lb.states()['blue1']['admin_state'] == 'maint'


def test_down_server_is_drainable(lb, run_module):
    """community.general #8092: the status text says DOWN; the admin state still moves to drain, then maint."""
    lb.reset('mixed')
    deadline = time.monotonic() + 10
    while lb.servers('mixed')['green1'].up and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not lb.servers('mixed')['green1'].up
    result = drain(run_module, lb, backend='mixed', servers=['green1'], timeout=5, interval=0.2, maint=False)
    assert not result.get('failed') and result['changed'], result
    assert lb.states('mixed')['green1']['admin_state'] == 'drain'
    result = drain(run_module, lb, backend='mixed', servers=['green1'], timeout=5, interval=0.2)
    assert result['changed'] and lb.states('mixed')['green1']['admin_state'] == 'maint'


def test_check_mode_reports_without_waiting(lb, run_module):
    blue_only(lb)
    slow = Slow(lb, 1, 2)
    wait_scur(lb, 'blue1', 1)
    started = time.monotonic()
    result = drain(run_module, lb, servers=['blue1'], timeout=30, check_mode=True, diff=True)
    assert time.monotonic() - started < 1.5
    assert result['changed'] is True and result['waited'] == 0 and result['sessions'] == {'blue1': 1}
    assert result['diff']['after'] == {'servers': {'blue1': 'maint'}}
    assert lb.states()['blue1']['admin_state'] == 'ready'
    slow.join()


@pytest.mark.parametrize('override,needle', [
    ({'socket': '/nonexistent/admin.sock', 'servers': ['blue1']}, 'cannot connect to HAProxy socket'),
    ({'backend': 'nope', 'servers': ['blue1']}, "Can't find backend"),
    ({'servers': ['blue9']}, 'No such server in backend app: blue9'),
    ({'colors': COLORS, 'color': 'red'}, "color 'red' is not one of the colors"),
    ({'colors': COLORS}, 'color'),
    ({'servers': ['blue1'], 'interval': 0}, 'interval must be greater than 0, got 0'),
])
def test_clear_errors(lb, run_module, override, needle):
    lb.reset()
    before = lb.states()
    result = drain(run_module, lb, **override)
    assert result.get('failed') and needle in result['msg'], result
    assert lb.states() == before


class CuttingProxy(UnixSocketServer):
    """A unix-socket proxy in front of the stats socket that hangs up a connection at its first command starting
    with `cut_on` once a command starting with `armed_by` went through: a socket lost in the middle of a task."""

    def __init__(self, target, armed_by, cut_on):
        self.target = target
        self.armed_by = armed_by
        self.cut_on = cut_on
        self.cut = []
        super().__init__(prefix='zdt-proxy-')

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass

    def _handle(self, conn):
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self.target)
        threading.Thread(target=self._pump, args=(upstream, conn), daemon=True).start()
        armed = False
        buf = b''
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b'\n' in buf:
                    line, buf = buf.split(b'\n', 1)
                    text = line.decode()
                    if armed and text.startswith(self.cut_on):
                        self.cut.append(text)
                        return
                    armed = armed or text.startswith(self.armed_by)
                    upstream.sendall(line + b'\n')
        except OSError:
            return
        finally:
            for sock in (conn, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def test_socket_lost_after_draining_reports_changed(lb, run_module):
    """The socket fails while waiting, after blue1 was put to drain: the task failed *and* changed something."""
    blue_only(lb)
    with lb.client() as client:
        client.set_server_state('app', 'green1', 'ready')
    proxy = CuttingProxy(lb.socket, armed_by='set server app/blue1 state drain', cut_on='show stat')
    try:
        result = drain(run_module, lb, socket=proxy.path, servers=['blue1'], timeout=5, interval=0.2)
    finally:
        proxy.close()
    assert proxy.cut == ['show stat app -1 -1']
    assert result.get('failed') and result['changed'] is True, result
    assert 'closed the connection' in result['msg'] and 'after setting blue1 to drain' in result['msg'], result
    assert lb.states()['blue1']['admin_state'] == 'drain'
