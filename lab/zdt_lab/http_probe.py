"""One HTTP GET on loopback, as the tests and the molecule verifiers read an app or a load balancer."""
import http.client


def get(port, path='/health', timeout=5):
    """GET 127.0.0.1:port/path: (status, X-App-Version header, body bytes); OSError when nothing answers."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request('GET', path)
        response = conn.getresponse()
        return response.status, response.getheader('X-App-Version'), response.read()
    finally:
        conn.close()


def accepts(port, timeout=5):
    """True while something on the port answers a GET /health."""
    try:
        get(port, timeout=timeout)
        return True
    except OSError:
        return False
