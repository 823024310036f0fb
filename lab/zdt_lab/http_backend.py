"""A small threaded HTTP/1.1 backend for HAProxy tests and benchmarks (127.0.0.1 only).

    .venv/bin/python -m zdt_lab.http_backend PORT VERSION [FAIL_EVERY]

Every response carries ``X-App-Version: VERSION``; ``/health`` answers 200; ``?sleep=N`` delays the answer N seconds
(long-lived requests for drain tests); ``?drop=1`` closes the connection without an answer (HAProxy counts a
response error). With FAIL_EVERY = N > 0 every N-th request other than ``/health`` answers 500 (a version that fails
one request in N; the count is per process, so the share is exact for requests sent one after the other).
Keep-alive is supported; client disconnects are ignored quietly.
"""
import http.client
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    # one send per response and no Nagle: otherwise headers and body go out as two small writes and keep-alive
    # requests wait ~40 ms for the peer's delayed ACK
    wbufsize = 65536
    disable_nagle_algorithm = True
    server_version = 'zdt-test-backend'
    sys_version = ''
    version = '0'
    fail_every = 0
    requests = 0
    lock = threading.Lock()

    def _fails(self, path):
        if not self.fail_every or path == '/health':
            return False
        with Handler.lock:
            Handler.requests += 1
            return Handler.requests % self.fail_every == 0

    def do_GET(self):  # noqa: N802 (http.server API)
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if 'sleep' in query:
            time.sleep(min(float(query['sleep'][0]), 60.0))
        if 'drop' in query:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status = 500 if self._fails(url.path) else 200
        body = ('version %s\n' % self.version).encode()
        self.send_response(status)
        self.send_header('X-App-Version', self.version)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return   # health checks and clients hang up; not an error of the backend
        socketserver.BaseServer.handle_error(self, request, client_address)


class LoadGenerator:
    """Bounded HTTP load (time AND count) from threads: keep-alive clients reuse one connection, close clients
    send ``Connection: close`` and reconnect for every request. Counts statuses, versions (from ``version_header``)
    and socket errors. ``pause`` seconds between a thread's requests turn it from flat out into a steady rate."""

    def __init__(self, port, keepalive=4, close=4, duration=5.0, max_requests=50000, path='/', timeout=10.0, pause=0.0,
                 version_header='X-App-Version'):
        self.port, self.path, self.timeout = port, path, timeout
        self.pause, self.version_header = pause, version_header
        self.duration, self.max_requests = duration, max_requests
        self.lock = threading.Lock()
        self.sent = 0
        self.statuses = {}
        self.versions = {}
        self.by_version = {}   # version -> {status: count}: which version gave which answers
        self.errors = []
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(True,), daemon=True) for _client in range(keepalive)]
        self.threads += [threading.Thread(target=self._run, args=(False,), daemon=True) for _client in range(close)]

    def _take(self):
        with self.lock:
            if self.sent >= self.max_requests:
                return False
            self.sent += 1
            return True

    def _run(self, keepalive):
        deadline = time.monotonic() + self.duration
        conn = None
        while time.monotonic() < deadline and not self.stop_event.is_set() and self._take():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=self.timeout)
                headers = {} if keepalive else {'Connection': 'close'}
                conn.request('GET', self.path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                version = resp.getheader(self.version_header)
                with self.lock:
                    self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
                    self.versions[version] = self.versions.get(version, 0) + 1
                    answers = self.by_version.setdefault(version, {})
                    answers[resp.status] = answers.get(resp.status, 0) + 1
                if not keepalive or resp.will_close:
                    conn.close()
                    conn = None
                if self.pause:
                    self.stop_event.wait(self.pause)
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.errors.append('%s: %s' % (type(exc).__name__, exc))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def join(self):
        for thread in self.threads:
            thread.join(self.duration + self.timeout + 5)
        return self

    def stop(self):
        """End the load now (each thread finishes its request in flight) and wait for the threads."""
        self.stop_event.set()
        return self.join()

    @property
    def non_2xx(self):
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def ok(self):
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)


def main(argv):
    port, version = int(argv[1]), argv[2]
    Handler.version = version
    Handler.fail_every = int(argv[3]) if len(argv) > 3 else 0
    server = Server(('127.0.0.1', port), Handler)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main(sys.argv)
