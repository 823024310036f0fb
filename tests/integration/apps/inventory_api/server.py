"""inventory-api: a test service unlike the sample, deployed through the app contract by test_app_contract.py.

Standard library only. Listens on $ZDT_BIND:$ZDT_PORT; tells its version (from the VERSION file of its release) in
the JSON of /status/ready at build.version and in an X-Build header; /api/items answers a small JSON list; /api/gate
answers 500 when the release holds a file GATE_FAILS (a release that fails its gate check); with a file ERRORS_EVERY
holding N, every N-th /api/items request answers 500 (a release that fails one request in N); /status/ready answers 503
while the release directory holds a file UNHEALTHY (a host that fails its health check). On SIGTERM it stops
accepting, finishes the requests in flight, and exits 0. It refuses to start unless its install step ran.
"""
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))


def read(name):
    with open(os.path.join(HERE, name), encoding='utf-8') as handle:
        return handle.read().strip()


VERSION = read('VERSION')
GATE_FAILS = os.path.exists(os.path.join(HERE, 'GATE_FAILS'))
ERRORS_EVERY = int(read('ERRORS_EVERY')) if os.path.exists(os.path.join(HERE, 'ERRORS_EVERY')) else 0
ITEMS_SERVED = [0]
ITEMS_LOCK = threading.Lock()


def fails_this_one():
    """True for every ERRORS_EVERY-th /api/items request of this process."""
    if not ERRORS_EVERY:
        return False
    with ITEMS_LOCK:
        ITEMS_SERVED[0] += 1
        return ITEMS_SERVED[0] % ERRORS_EVERY == 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):   # quiet
        pass

    def answer(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.send_header('X-Build', VERSION)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):   # noqa: N802 - the stdlib's name
        path = self.path.split('?', 1)[0]
        if path == '/status/ready':
            healthy = not os.path.exists(os.path.join(HERE, 'UNHEALTHY'))
            self.answer(200 if healthy else 503, {'ready': healthy, 'build': {'version': VERSION, 'color': os.environ.get('ZDT_COLOR')}})
        elif path == '/api/items' and fails_this_one():
            self.answer(500, {'error': 'one in %d fails' % ERRORS_EVERY})
        elif path == '/api/items':
            self.answer(200, {'items': [{'sku': 'A-%d' % n, 'stock': n} for n in range(5)], 'served_by': VERSION})
        elif path == '/api/gate':
            self.answer(500 if GATE_FAILS else 200, {'gate': 'fail' if GATE_FAILS else 'ok'})
        elif path == '/env':
            self.answer(200, {'token_set': bool(os.environ.get('API_TOKEN')), 'region': os.environ.get('REGION'),
                              'user': os.environ.get('USER'), 'version': os.environ.get('ZDT_VERSION')})
        else:
            self.answer(404, {'error': 'not found'})


def main():
    if read('installed.txt') != 'installed ' + VERSION:
        sys.exit('the install step did not run')
    server = ThreadingHTTPServer((os.environ['ZDT_BIND'], int(os.environ['ZDT_PORT'])), Handler)
    server.daemon_threads = False   # server_close() joins the request threads: in-flight requests finish
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
