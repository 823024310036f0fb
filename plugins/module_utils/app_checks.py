# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP checks of the app contract: smoke and gate checks, health, and how an instance tells its version (no Ansible import).

A check is ``{path, status, body, method, headers}``: the answer must have the status (one or a list) and, when
``body`` is given, a body the regular expression matches.  An instance tells its version in a header
(``{header: NAME}``, on every answer), in a JSON document (``{json: dotted.path}``, its health answer: answers
without that path tell nothing, but a round must hold one that tells) or not at all (``{}``).  A failing check says
which URL, what was expected and what came back.  HTTP goes through a ``fetch`` function passed in, so the logic
is tested without a server.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import re
import time

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import SpecError, ZdtError

METHODS = ('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS')
SAFE_METHODS = ('GET', 'HEAD', 'OPTIONS')
BODY_SHOWN = 200   # characters of a body quoted in a failure message


class CheckFailed(ZdtError):
    """A check did not pass; ``result`` holds the last round's answers."""

    def __init__(self, message, result):
        self.result = result
        super(CheckFailed, self).__init__(message)


class Check(object):
    """One validated check."""

    def __init__(self, path, status=(200,), body=None, method='GET', headers=None, field='check'):
        self.path = path
        self.status = tuple(status)
        self.body = body
        self.body_re = re.compile(body) if body is not None else None
        self.method = method
        self.headers = dict(headers or {})
        self.field = field

    def url(self, base_url):
        return base_url.rstrip('/') + self.path

    def describe(self, base_url):
        return '%s %s' % (self.method, self.url(base_url))

    def expected(self):
        text = 'status %s' % (self.status[0] if len(self.status) == 1 else ' or '.join(str(s) for s in self.status))
        if self.body is not None:
            text += ' and a body matching %r' % self.body
        return text


def _status_list(value, field):
    values = value if isinstance(value, list) else [value]
    out = []
    for i, item in enumerate(values):
        if isinstance(item, bool):
            raise SpecError(field, 'must be an HTTP status code or a list of them, got %r' % (value,))
        try:
            code = int(item)
        except (TypeError, ValueError):
            raise SpecError(field if not isinstance(value, list) else '%s[%d]' % (field, i),
                            'must be an HTTP status code (100-599), got %r' % (item,))
        if not 100 <= code <= 599:
            raise SpecError(field, 'must be an HTTP status code (100-599), got %r' % (item,))
        out.append(code)
    if not out:
        raise SpecError(field, 'must list at least one status code')
    return out


def parse_check(item, field):
    """Validate one check mapping; SpecError names the field (e.g. ``zdt_smoke_checks[1].body``)."""
    if not isinstance(item, dict):
        raise SpecError(field, 'must be a mapping with at least path, got %s' % type(item).__name__)
    unknown = sorted(set(item) - {'path', 'status', 'body', 'method', 'headers'})
    if unknown:
        raise SpecError('%s.%s' % (field, unknown[0]), 'unknown key (allowed: body, headers, method, path, status)')
    path = item.get('path')
    if not isinstance(path, str) or not path.startswith('/'):
        raise SpecError(field + '.path', 'must be a URL path starting with "/", got %r' % (path,))
    if any(c in path for c in ' \r\n\t'):
        raise SpecError(field + '.path', 'must not contain white space (URL-encode it), got %r' % (path,))
    status = _status_list(item.get('status', 200) if item.get('status') is not None else 200, field + '.status')
    body = item.get('body')
    if body is not None:
        if not isinstance(body, str):
            raise SpecError(field + '.body', 'must be a regular expression (a string), got %s' % type(body).__name__)
        try:
            re.compile(body)
        except re.error as exc:
            raise SpecError(field + '.body', 'invalid regular expression %r: %s' % (body, exc))
    method = str(item.get('method') or 'GET').upper()
    if method not in METHODS:
        raise SpecError(field + '.method', 'must be one of %s, got %r' % (', '.join(METHODS), item.get('method')))
    headers = item.get('headers') or {}
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, (str, int)) for k, v in headers.items()):
        raise SpecError(field + '.headers', 'must be a mapping of header name to value')
    return Check(path, status, body, method, dict((k, str(v)) for k, v in headers.items()), field)


def parse_checks(items, field):
    if items is None:
        return []
    if not isinstance(items, list):
        raise SpecError(field, 'must be a list of checks, got %s' % type(items).__name__)
    return [parse_check(item, '%s[%d]' % (field, i)) for i, item in enumerate(items)]


def parse_version_rule(rule, field='version'):
    """``{header: NAME}`` -> ('header', 'name'), ``{json: a.b}`` -> ('json', ['a', 'b']), ``{}``/None -> (None, None)."""
    if rule is None or rule == {}:
        return None, None
    if not isinstance(rule, dict) or len(rule) != 1 or next(iter(rule)) not in ('header', 'json'):
        raise SpecError(field, 'must be {header: NAME}, {json: dotted.path} or {} (the instance does not tell), got %r' % (rule,))
    kind, value = next(iter(rule.items()))
    if not isinstance(value, str) or not value.strip():
        raise SpecError('%s.%s' % (field, kind), 'must be a non-empty string')
    if kind == 'header':
        if not re.match(r'^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$', value):
            raise SpecError(field + '.header', 'invalid header name %r' % value)
        return 'header', value.lower()
    parts = value.split('.')
    if any(not p for p in parts):
        raise SpecError(field + '.json', 'invalid dotted path %r' % value)
    return 'json', parts


def told_version(rule, headers, body):
    """The version an answer tells by ``rule`` (parsed), or (None, why) when it tells none."""
    kind, value = rule
    if kind is None:
        return None, None
    if kind == 'header':
        found = dict((k.lower(), v) for k, v in (headers or {}).items()).get(value)
        if found is None or str(found).strip() == '':
            return None, 'no %s header in the answer' % value
        return str(found).strip(), None
    try:
        node = json.loads(body) if isinstance(body, str) else body
    except ValueError:
        return None, 'the body is not JSON (looking for %s)' % '.'.join(value)
    for part in value:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None, 'no %s in the JSON body' % '.'.join(value)
    if node is None or isinstance(node, (dict, list)) or str(node).strip() == '':
        return None, '%s in the JSON body is not a version: %r' % ('.'.join(value), node)
    return str(node).strip(), None


def _shown(body):
    text = body if isinstance(body, str) else repr(body)
    text = ' '.join(text.split())
    return text if len(text) <= BODY_SHOWN else text[:BODY_SHOWN] + '...'


def evaluate(check, base_url, answer, rule=(None, None), expect_version=None):
    """Judge one answer ``{status, headers, body, error}``: returns a result dict {url, ok, status, version, msg}."""
    url = check.url(base_url)
    result = dict(url=url, method=check.method, ok=False, status=answer.get('status'), version=None, msg='')
    where = check.describe(base_url)
    if answer.get('error'):
        result['msg'] = '%s: expected %s, got no answer: %s' % (where, check.expected(), answer['error'])
        return result
    body = answer.get('body') or ''
    if answer.get('status') not in check.status:
        result['msg'] = '%s: expected %s, got status %s; body: %s' % (where, check.expected(), answer.get('status'), _shown(body))
        return result
    if check.body_re is not None and not check.body_re.search(body):
        result['msg'] = '%s: expected %s, got status %s with a body that does not match; body: %s' % (
            where, check.expected(), answer.get('status'), _shown(body))
        return result
    version, why = told_version(rule, answer.get('headers'), body)
    result['version'] = version
    if expect_version is not None and rule[0] is not None:
        # a header is on every answer; a JSON path only in the health document (run_checks wants one per round)
        if version is None and rule[0] == 'header':
            result['msg'] = '%s: expected version %s, but %s' % (where, expect_version, why)
            return result
        if version is not None and version != str(expect_version):
            result['msg'] = '%s: expected version %s, got version %s' % (where, expect_version, version)
            return result
    result['ok'] = True
    return result


def run_checks(base_url, checks, fetch, rule=(None, None), expect_version=None, repeat=1, wait=0.0, interval=1.0,
               check_mode=False, clock=time.monotonic, sleep=time.sleep):
    """Run every check ``repeat`` times against ``base_url``; retry the round until it passes or ``wait`` seconds passed.

    ``fetch(method, url, headers)`` returns ``{status, headers, body, error}``.  Returns {answers, versions, rounds,
    waited, unsent}; raises CheckFailed naming the first failing check of the last round.
    """
    start = clock()
    rounds = 0
    unsent = []
    while True:
        rounds += 1
        answers = []
        for _attempt in range(max(1, int(repeat))):
            for check in checks:
                if check_mode and check.method not in SAFE_METHODS:
                    if check.describe(base_url) not in unsent:
                        unsent.append(check.describe(base_url))
                    continue
                answers.append(evaluate(check, base_url, fetch(check.method, check.url(base_url), check.headers), rule, expect_version))
        failed = [r for r in answers if not r['ok']]
        if (not failed and expect_version is not None and rule[0] == 'json' and answers
                and all(r['version'] is None for r in answers)):
            failed = [dict(answers[0], ok=False, msg='%s: expected version %s, but no answer told one (%s in a JSON body)'
                           % (base_url, expect_version, '.'.join(rule[1])))]
            answers[0] = failed[0]
        waited = clock() - start
        outcome = dict(answers=answers, versions=sorted(set(r['version'] for r in answers if r['version'] is not None)),
                       rounds=rounds, waited=round(waited, 3), unsent=unsent)
        if not failed:
            return outcome
        if waited + interval > wait:
            more = ' (%d more failed)' % (len(failed) - 1) if len(failed) > 1 else ''
            after = ' after %.0fs' % waited if wait else ''
            raise CheckFailed('%s%s%s' % (failed[0]['msg'], more, after), outcome)
        sleep(interval)
