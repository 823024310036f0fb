"""The sample service's test-only fault switch: GET /test/check fails after N served requests (APP_TEST_HOOKS=1)."""
import http.client
import json
import threading

import pytest

# zdt_sample: sample/service/common, on pytest's path by pytest.ini.
from zdt_sample.config import Config, ConfigError
from zdt_sample.server import Request, Server, Service, json_response


class EchoService(Service):
    version = 2

    def routes(self):
        return [('GET', r'/things', lambda request: json_response(200, {'things': []}))]


def test_config_reads_the_fault_switch():
    assert Config({'DB_NAME': 'x'}).test_fail_check_after is None
    assert Config({'DB_NAME': 'x', 'APP_TEST_FAIL_CHECK_AFTER': '7'}).test_fail_check_after == 7
    with pytest.raises(ConfigError, match='APP_TEST_FAIL_CHECK_AFTER'):
        Config({'DB_NAME': 'x', 'APP_TEST_FAIL_CHECK_AFTER': '-1'})


def test_check_fails_once_the_limit_is_served():
    service = EchoService(Config({'DB_NAME': 'x', 'APP_TEST_FAIL_CHECK_AFTER': '2'}), pool=None)
    check = Request('GET', '/test/check', {}, {}, b'')
    assert service.test_check(check).status == 200
    assert service.count_served() == 1
    assert service.test_check(check).status == 200
    service.count_served()
    response = service.test_check(check)
    assert response.status == 503
    assert json.loads(response.body)['served'] == 2


def test_check_never_fails_without_a_limit():
    service = EchoService(Config({'DB_NAME': 'x'}), pool=None)
    for _attempt in range(5):
        service.count_served()
    assert service.test_check(Request('GET', '/test/check', {}, {}, b'')).status == 200


def _serve(env):
    config = Config(dict(env, DB_NAME='x', APP_PORT='0', DB_POOL_WARM='0'))
    server = Server(config, EchoService(config, pool=None))
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    return server


def _get(port, path):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    try:
        conn.request('GET', path)
        response = conn.getresponse()
        return response.status, response.getheader('X-App-Version'), response.read()
    finally:
        conn.close()


def test_over_http_only_application_requests_count_and_other_requests_still_succeed():
    server = _serve({'APP_TEST_HOOKS': '1', 'APP_TEST_FAIL_CHECK_AFTER': '3'})
    port = server.server_address[1]
    try:
        assert _get(port, '/test/check')[:2] == (200, '2')
        for _attempt in range(3):
            assert _get(port, '/things')[0] == 200
        assert _get(port, '/test/check')[:2] == (503, '2')
        # The fault touches nothing else: the application still answers.
        assert _get(port, '/things')[0] == 200
    finally:
        server.graceful_stop(2)


def test_over_http_the_check_is_absent_without_test_hooks():
    server = _serve({'APP_TEST_FAIL_CHECK_AFTER': '0'})
    port = server.server_address[1]
    try:
        assert _get(port, '/test/check')[0] == 404
    finally:
        server.graceful_stop(2)
