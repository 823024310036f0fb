"""HTTP/1.1 server for the sample service: keep-alive, a bounded number of connection threads, graceful stop.

On SIGTERM (or SIGINT) the server stops accepting, closes idle keep-alive connections, lets requests
in flight finish (bounded by APP_STOP_TIMEOUT), closes its database connections and exits 0.
"""
import json
import logging
import os
import re
import select
import signal
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from zdt_sample import db as dbmod
from zdt_sample.config import Config, ConfigError

try:
    import pymysql
except ImportError:
    pymysql = None

LOG = logging.getLogger('zdt_sample')
MAX_BODY = 64 * 1024


class HTTPError(dbmod.AbortTransaction):
    """An error answered to the client as ``{"error": message}`` with the given status."""

    def __init__(self, status, message, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


class Request:
    """What a route handler gets: method, path, query (first value of each name), headers and the JSON body."""

    # pylint: disable=too-few-public-methods

    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body

    def json(self):
        if not self.body:
            raise HTTPError(400, 'a JSON object body is required')
        try:
            data = json.loads(self.body.decode('utf-8'))
        except (UnicodeDecodeError, ValueError) as exc:
            raise HTTPError(400, 'body is not valid JSON: %s' % exc) from None
        if not isinstance(data, dict):
            raise HTTPError(400, 'body must be a JSON object')
        return data


class Response:
    """Status, body bytes, content type and extra headers."""

    # pylint: disable=too-few-public-methods

    def __init__(self, status, body=b'', content_type='application/json', headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def json_response(status, data, headers=None):
    return Response(status, (json.dumps(data, separators=(',', ':'), default=str) + '\n').encode('utf-8'),
                    headers=headers)


def html_response(status, text):
    return Response(status, text.encode('utf-8'), content_type='text/html; charset=utf-8')


class Service:
    """Base of a release's application: routes plus health.  ``version`` is set by the release."""

    version = 0

    def __init__(self, config, pool):
        self.config = config
        self.pool = pool
        self._routes = [(method, re.compile('^' + pattern + '$'), handler) for method, pattern, handler in self.routes()]
        self._served = 0
        self._served_lock = threading.Lock()

    def routes(self):
        """A list of (method, regex, handler); named groups are passed to handler(request, **groups)."""
        raise NotImplementedError

    def transaction(self, work):
        return dbmod.run_transaction(self.pool, work, retries=self.config.db_retries)

    def health(self, request):  # pylint: disable=unused-argument
        def check(cur):
            cur.execute(self.health_query())
            cur.fetchall()
        try:
            self.transaction(check)
        except Exception as exc:  # pylint: disable=broad-except
            return json_response(503, {'status': 'unavailable', 'version': self.version, 'color': self.config.color,
                                       'error': str(exc)})
        return json_response(200, {'status': 'ok', 'version': self.version, 'color': self.config.color})

    def health_query(self):
        return 'SELECT 1'

    def count_served(self):
        """Count one application request (not /health, not /test/check); returns the new count."""
        with self._served_lock:
            self._served += 1
            return self._served

    def test_check(self, request):  # pylint: disable=unused-argument
        """GET /test/check (APP_TEST_HOOKS=1 only): a check a test can make fail on purpose.

        200 until the process has served APP_TEST_FAIL_CHECK_AFTER application requests, 503 from then on
        (always 200 when that is unset).  It lets a test build "a release that passes its first checks and
        fails its smoke check after it took traffic" without failing any request the clients make.
        """
        with self._served_lock:
            served = self._served
        limit = self.config.test_fail_check_after
        if limit is not None and served >= limit:
            return json_response(503, {'error': 'test fault: failing after %d served requests' % limit,
                                       'served': served, 'version': self.version})
        return json_response(200, {'status': 'ok', 'served': served, 'version': self.version})

    def dispatch(self, request):
        allowed = []
        for method, regex, handler in self._routes:
            match = regex.match(request.path)
            if not match:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            return handler(request, **match.groupdict())
        if allowed:
            raise HTTPError(405, 'method %s not allowed on %s' % (request.method, request.path),
                            allow=', '.join(sorted(set(allowed))))
        raise HTTPError(404, 'no such resource: %s' % request.path)


def error_response(exc):
    """Map an exception raised by a handler to an HTTP response."""
    if isinstance(exc, HTTPError):
        headers = {'Allow': exc.extra['allow']} if 'allow' in exc.extra else None
        return json_response(exc.status, {'error': exc.message}, headers=headers)
    if isinstance(exc, dbmod.TransactionFailed):
        return json_response(503, {'error': 'transient database error persisted: %s' % exc})
    if isinstance(exc, dbmod.DatabaseUnavailable):
        return json_response(503, {'error': str(exc)})
    if pymysql is not None and isinstance(exc, pymysql.err.IntegrityError):
        code = dbmod.error_code(exc)
        if code == 1062:
            return json_response(409, {'error': 'conflict: %s' % exc.args[1]})
        if code in (1451, 1452):
            return json_response(409, {'error': 'referenced row missing or in use: %s' % exc.args[1]})
        return json_response(400, {'error': 'constraint violated: %s' % (exc.args[1:] or exc,)})
    if pymysql is not None and isinstance(exc, pymysql.err.DataError):
        return json_response(400, {'error': 'invalid value: %s' % (exc.args[1:] or exc,)})
    LOG.error('unhandled error: %s', ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return json_response(500, {'error': 'internal error: %s' % type(exc).__name__})


class Handler(BaseHTTPRequestHandler):
    """One keep-alive connection; serves requests until the client closes, it idles out, or the server stops."""

    protocol_version = 'HTTP/1.1'
    server_version = 'zdt-sample'
    request_timeout = 30.0

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        self.connection.settimeout(self.request_timeout)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self):
        self.close_connection = False
        while not self.close_connection:
            if not self._wait_for_request():
                break
            self.server.set_busy(self, True)
            try:
                self.handle_one_request()
            finally:
                self.server.set_busy(self, False)
            if self.server.stopping:
                break

    def _buffered(self):
        """True when a request is already buffered (non-blocking peek)."""
        sock = self.connection
        try:
            sock.settimeout(0.0)
            try:
                return bool(self.rfile.peek(1))
            finally:
                sock.settimeout(self.request_timeout)
        except (BlockingIOError, OSError, ValueError):
            return False

    def _wait_for_request(self):
        """Wait for the next request; False when the connection idled out or the server is stopping."""
        deadline = time.monotonic() + self.server.config.keepalive_timeout
        while True:
            if self._buffered():
                return True
            try:
                readable = select.select([self.connection], [], [], 0.2)[0]
            except (OSError, ValueError):
                return False
            if readable:
                return True
            if self.server.stopping or time.monotonic() > deadline or self.server.take_reclaim():
                return False

    def do_GET(self):  # pylint: disable=invalid-name
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _read_body(self):
        if self.headers.get('Transfer-Encoding', '').lower() not in ('', 'identity'):
            raise HTTPError(411, 'chunked request bodies are not supported; send Content-Length')
        raw = self.headers.get('Content-Length')
        if raw is None:
            return b''
        try:
            length = int(raw)
        except ValueError:
            raise HTTPError(400, 'bad Content-Length') from None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise HTTPError(413, 'body larger than %d bytes' % MAX_BODY)
        return self.rfile.read(length)

    def _serve(self):
        started = time.monotonic()
        service = self.server.service
        try:
            parts = urlsplit(self.path)
            query = {key: values[0] for key, values in parse_qs(parts.query).items()}
            body = self._read_body()
            if self.server.config.test_hooks and 'sleep' in query:
                time.sleep(min(float(query['sleep']), 60.0))
            request = Request(self.command, parts.path, query, self.headers, body)
            if parts.path == '/health':
                response = service.health(request)
            elif self.server.config.test_hooks and parts.path == '/test/check':
                response = service.test_check(request)
            else:
                service.count_served()
                response = service.dispatch(request)
        except Exception as exc:  # pylint: disable=broad-except
            response = error_response(exc)
        self._send(response)
        if self.server.config.access_log:
            LOG.info('%s "%s %s" %d %.1fms', self.client_address[0], self.command, self.path, response.status,
                     (time.monotonic() - started) * 1000)

    def _send(self, response):
        if self.server.stopping:
            self.close_connection = True
        self.send_response(response.status)
        self.send_header('X-App-Version', str(self.server.service.version))
        self.send_header('Content-Type', response.content_type)
        self.send_header('Content-Length', str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header('Connection', 'close')
        self.end_headers()
        if self.command != 'HEAD' and response.body:
            self.wfile.write(response.body)

    def send_error(self, code, message=None, explain=None):
        """Protocol errors (bad request line, too long headers...): JSON, with the version header."""
        self.close_connection = True
        try:
            self._send(json_response(code, {'error': message or self.responses.get(code, ('error',))[0]}))
        except OSError:
            pass

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        LOG.warning('%s %s', self.address_string(), format % args)

    def log_request(self, code='-', size='-'):
        pass


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with at most ``config.threads`` connection threads and a graceful stop."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, config, service):
        self.config = config
        self.service = service
        self.stopping = False
        self._slots = threading.BoundedSemaphore(config.threads)
        self._lock = threading.Lock()
        self._conn_threads = set()
        self._busy = set()
        self._reclaim = 0
        super().__init__((config.bind, config.port), Handler)

    def set_busy(self, handler, busy):
        with self._lock:
            if busy:
                self._busy.add(handler)
            else:
                self._busy.discard(handler)

    def in_flight(self):
        with self._lock:
            return len(self._busy)

    def take_reclaim(self):
        """An idle connection asks whether it should close to free its thread for a waiting one (one per waiter)."""
        with self._lock:
            if self._reclaim > 0:
                self._reclaim -= 1
                return True
            return False

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            # Every thread holds a connection.  Idle keep-alive connections give theirs up (one per waiting
            # connection) instead of making the new one wait for an idle timeout.
            with self._lock:
                self._reclaim = 1
            while not self._slots.acquire(timeout=0.05):
                if self.stopping:
                    self.shutdown_request(request)
                    return
            with self._lock:
                self._reclaim = 0
        thread = threading.Thread(target=self._run_connection, args=(request, client_address), daemon=True)
        with self._lock:
            self._conn_threads.add(thread)
        thread.start()

    def _run_connection(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except (ConnectionError, socket.timeout):
            pass
        except Exception:  # pylint: disable=broad-except
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._conn_threads.discard(threading.current_thread())
            self._slots.release()

    def handle_error(self, request, client_address):
        LOG.error('error on connection from %s:\n%s', client_address, traceback.format_exc())

    def graceful_stop(self, timeout):
        """Stop accepting, let in-flight requests finish within timeout; True when all connections ended."""
        self.stopping = True
        self.shutdown()          # the accept loop returns
        self.server_close()      # the listening socket closes: new connections are refused
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                alive = [t for t in self._conn_threads if t.is_alive()]
            if not alive:
                return True
            time.sleep(0.05)
        LOG.warning('stop timeout: %d connection(s) still busy after %.1fs', self.in_flight(), timeout)
        return False


def setup_logging(version, color):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s v' + str(version) + '/' + color + ' %(message)s'))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def make_pool(config):
    if pymysql is None:
        raise ConfigError('PyMySQL is not installed')
    params = config.db_params()
    return dbmod.Pool(lambda: pymysql.connect(**params), config.threads)


def run(service_class, env=None):
    """Entry point of a release: configure, serve until SIGTERM/SIGINT, stop gracefully.  Returns the exit code."""
    try:
        config = Config(env)
    except ConfigError as exc:
        sys.stderr.write('configuration error: %s\n' % exc)
        return 2
    setup_logging(service_class.version, config.color)
    pool = make_pool(config)
    service = service_class(config, pool)
    try:
        server = Server(config, service)
    except OSError as exc:
        LOG.error('cannot listen on %s:%s: %s', config.bind, config.port, exc)
        return 1
    if config.db_pool_warm:
        try:
            LOG.info('opened %d database connection(s)', pool.warm(config.db_pool_warm))
        except dbmod.DatabaseUnavailable as exc:
            LOG.warning('database not reachable at start (health will say so): %s', exc)
    stop = threading.Event()

    def on_signal(signum, frame):  # pylint: disable=unused-argument
        LOG.info('signal %d: stopping', signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if config.pidfile:
        with open(config.pidfile, 'w', encoding='utf-8') as handle:
            handle.write('%d\n' % os.getpid())
    serving = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.2}, daemon=True)
    serving.start()
    LOG.info('version %s (%s) listening on %s:%d, %d threads, database %s', service.version, config.color,
             config.bind, server.server_address[1], config.threads, config.db_name)
    while not stop.wait(1.0):
        pass
    clean = server.graceful_stop(config.stop_timeout)
    pool.close()
    if config.pidfile:
        try:
            os.unlink(config.pidfile)
        except OSError:
            pass
    LOG.info('stopped (%s)', 'all requests finished' if clean else 'stop timeout reached')
    return 0
