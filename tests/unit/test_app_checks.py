"""The app contract's checks: validation, judging answers, telling versions, waiting (no server)."""
import json

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils.app_checks import (
    CheckFailed, parse_check, parse_checks, parse_version_rule, run_checks, told_version)
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import SpecError

BASE = 'http://10.0.0.5:8080'


def answer(status=200, body='', headers=None, error=None):
    return dict(status=status, body=body, headers=headers or {}, error=error)


@pytest.mark.parametrize('item,field,needle', [
    ('nope', 'c[0]', 'must be a mapping'),
    ({'status': 200}, 'c[0].path', 'starting with "/"'),
    ({'path': 'health'}, 'c[0].path', 'starting with "/"'),
    ({'path': '/a b'}, 'c[0].path', 'white space'),
    ({'path': '/', 'status': 'ok'}, 'c[0].status', 'HTTP status code'),
    ({'path': '/', 'status': 700}, 'c[0].status', '100-599'),
    ({'path': '/', 'status': True}, 'c[0].status', 'HTTP status code'),
    ({'path': '/', 'body': '(unclosed'}, 'c[0].body', 'invalid regular expression'),
    ({'path': '/', 'method': 'FETCH'}, 'c[0].method', 'must be one of'),
    ({'path': '/', 'headers': ['x']}, 'c[0].headers', 'mapping'),
    ({'path': '/', 'expect': 200}, 'c[0].expect', 'unknown key'),
])
def test_bad_checks_name_the_field(item, field, needle):
    with pytest.raises(SpecError) as err:
        parse_checks([item], 'c')
    assert err.value.field == field and needle in str(err.value)


def test_defaults_and_lists():
    check = parse_check({'path': '/health'}, 'c')
    assert check.status == (200,) and check.method == 'GET' and check.body is None
    check = parse_check({'path': '/x', 'status': [200, 204], 'method': 'post', 'headers': {'X-A': 1}}, 'c')
    assert check.status == (200, 204) and check.method == 'POST' and check.headers == {'X-A': '1'}
    assert parse_checks(None, 'c') == []


@pytest.mark.parametrize('rule,parsed', [
    ({}, (None, None)), (None, (None, None)), ({'header': 'X-App-Version'}, ('header', 'x-app-version')),
    ({'json': 'build.version'}, ('json', ['build', 'version'])),
])
def test_version_rules(rule, parsed):
    assert parse_version_rule(rule) == parsed


@pytest.mark.parametrize('rule', [{'header': ''}, {'json': 'a..b'}, {'xml': 'v'}, {'header': 'a b'}, 'header', {'header': 'a', 'json': 'b'}])
def test_bad_version_rules(rule):
    with pytest.raises(SpecError):
        parse_version_rule(rule, 'zdt_app.version')


def test_told_version_by_header_and_json():
    assert told_version(('header', 'x-app-version'), {'X-App-Version': ' 2 '}, '') == ('2', None)
    assert told_version(('header', 'x-app-version'), {}, '')[0] is None
    body = json.dumps({'build': {'version': '1.10.0', 'list': ['a']}})
    assert told_version(('json', ['build', 'version']), {}, body) == ('1.10.0', None)
    assert told_version(('json', ['build', 'list', '0']), {}, body) == ('a', None)
    assert 'no build.nope' in told_version(('json', ['build', 'nope']), {}, body)[1]
    assert 'not JSON' in told_version(('json', ['v']), {}, '<html>')[1]
    assert 'not a version' in told_version(('json', ['build']), {}, body)[1]
    assert told_version(('json', ['v']), {}, json.dumps({'v': 7})) == ('7', None)


def run(answers, checks, **kw):
    sent = []

    def fetch(method, url, headers):
        sent.append((method, url))
        return answers.pop(0) if len(answers) > 1 else answers[0]
    return run_checks(BASE, parse_checks(checks, 'c'), fetch, **kw), sent


def test_a_failing_check_names_the_url_what_was_expected_and_what_came_back():
    with pytest.raises(CheckFailed) as err:
        run([answer(503, 'maintenance <b>now</b>')], [{'path': '/api/items?limit=5', 'status': 200, 'body': '"items"'}])
    assert str(err.value) == ('GET http://10.0.0.5:8080/api/items?limit=5: expected status 200 and a body matching \'"items"\', '
                              'got status 503; body: maintenance <b>now</b>')
    with pytest.raises(CheckFailed) as err:
        run([answer(200, '{"users": []}')], [{'path': '/api', 'body': '"items"'}])
    assert 'got status 200 with a body that does not match; body: {"users": []}' in str(err.value)
    with pytest.raises(CheckFailed) as err:
        run([answer(None, error='Connection refused')], [{'path': '/health'}])
    assert 'GET http://10.0.0.5:8080/health: expected status 200, got no answer: Connection refused' == str(err.value)


def test_version_expectation():
    rule = ('header', 'x-app-version')
    outcome, _sent = run([answer(200, 'ok', {'X-App-Version': '2'})], [{'path': '/'}], rule=rule, expect_version='2')
    assert outcome['versions'] == ['2']
    with pytest.raises(CheckFailed) as err:
        run([answer(200, 'ok', {'X-App-Version': '1'})], [{'path': '/'}], rule=rule, expect_version='2')
    assert 'expected version 2, got version 1' in str(err.value)
    with pytest.raises(CheckFailed) as err:
        run([answer(200, 'ok')], [{'path': '/'}], rule=rule, expect_version='2')
    assert 'expected version 2, but no x-app-version header in the answer' in str(err.value)
    # an instance that does not tell its version is not judged by it
    outcome, _sent = run([answer(200, 'ok')], [{'path': '/'}], expect_version='2')
    assert outcome['versions'] == []


def test_a_json_version_is_told_by_the_health_document_only():
    rule = ('json', ['build', 'version'])
    health = answer(200, json.dumps({'build': {'version': '1.10.0'}}))
    items = answer(200, json.dumps({'items': []}))
    outcome, _sent = run([health, items], [{'path': '/status/ready'}, {'path': '/api/items'}], rule=rule, expect_version='1.10.0')
    assert outcome['versions'] == ['1.10.0']
    with pytest.raises(CheckFailed) as err:
        run([items], [{'path': '/api/items'}], rule=rule, expect_version='1.10.0')
    assert 'expected version 1.10.0, but no answer told one (build.version in a JSON body)' in str(err.value)
    with pytest.raises(CheckFailed) as err:
        run([answer(200, json.dumps({'build': {'version': '1.9.0'}})), items], [{'path': '/s'}, {'path': '/i'}], rule=rule,
            expect_version='1.10.0')
    assert 'expected version 1.10.0, got version 1.9.0' in str(err.value)


def test_repeat_and_several_versions_through_a_load_balancer():
    answers = [answer(200, 'x', {'V': '1'}), answer(200, 'x', {'V': '2'}), answer(200, 'x', {'V': '2'})]
    outcome, sent = run(answers, [{'path': '/'}], rule=('header', 'v'), repeat=3)
    assert outcome['versions'] == ['1', '2'] and len(sent) == 3


class Clock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_retries_a_failing_round_until_it_passes_or_the_time_is_up():
    clock = Clock()
    answers = [answer(503), answer(503), answer(200)]
    outcome, sent = run(answers, [{'path': '/health'}], wait=10, interval=1, clock=clock, sleep=clock.sleep)
    assert outcome['rounds'] == 3 and len(sent) == 3 and clock.now == 2
    clock = Clock()
    with pytest.raises(CheckFailed) as err:
        run([answer(503)], [{'path': '/health'}], wait=3, interval=1, clock=clock, sleep=clock.sleep)
    assert err.value.result['rounds'] == 4 and str(err.value).endswith('after 3s')


def test_check_mode_skips_checks_that_could_change_something():
    outcome, sent = run([answer(200)], [{'path': '/a'}, {'path': '/b', 'method': 'POST'}], check_mode=True)
    assert sent == [('GET', BASE + '/a')] and outcome['unsent'] == ['POST http://10.0.0.5:8080/b']
