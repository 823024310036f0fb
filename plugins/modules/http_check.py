#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: http_check
short_description: Check an HTTP service against a list of checks and read the version it tells
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - Sends each check of O(checks) to O(url) and judges the answer by its status and, when given, a regular
    expression its body must match. A failing check fails the task with a message that names the URL, what was
    expected and what came back.
  - Reads the version the service tells, by O(version) (a response header or a dotted path into a JSON body), and
    with O(expect_version) requires every answer to tell that version.
  - With O(wait), repeats the whole round until it passes or O(wait) seconds have passed (a service that is still
    starting). With O(repeat), runs the checks several times per round (through a load balancer, to reach several
    servers).
  - This is the app contract's probe used by the roles of the collection (health, smoke and gate checks, reading the
    live version); it never changes anything on the service unless a check uses a method other than GET, HEAD or
    OPTIONS.
options:
  url:
    description:
      - Base URL of the service or load balancer, for example C(http://10.0.0.5:8080). The checks' paths are appended.
    type: str
    required: true
  checks:
    description:
      - The checks. Each has C(path) (required, starts with C(/)), C(status) (a code or a list, default 200), C(body)
        (a regular expression the body must match), C(method) (default C(GET)) and C(headers).
    type: list
    elements: dict
    required: true
  version:
    description:
      - "How the service tells its version: C({header: NAME}) on every answer, C({json: dotted.path}) in a JSON document
        (its health answer), or C({}) (it does not tell)."
    type: dict
    default: {}
  expect_version:
    description:
      - The version every answer must tell (ignored when O(version) is C({})).
    type: str
  repeat:
    description:
      - How many times each check is sent per round.
    type: int
    default: 1
  wait:
    description:
      - Seconds to keep repeating a failing round before the task fails. V(0) judges one round.
    type: float
    default: 0
  interval:
    description:
      - Seconds between two rounds while waiting.
    type: float
    default: 1
  timeout:
    description:
      - Seconds one request may take.
    type: float
    default: 5
  validate_certs:
    description:
      - Verify the TLS certificate of an C(https) URL.
    type: bool
    default: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The checks run in check mode too (they read); a check with a method other than GET, HEAD or OPTIONS is not sent, and named.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
notes:
  - Runs on the managed host, so the URL is reached from there (an app host checks itself, a load balancer its frontend).
'''

EXAMPLES = r'''
- name: Wait until the new instance is healthy and tells version 1.10.0
  zdt.bluegreen.http_check:
    url: http://127.0.0.1:8001
    checks: [{path: /health, status: 200}]
    version: {json: build.version}
    expect_version: 1.10.0
    wait: 60

- name: Smoke checks through the load balancer
  zdt.bluegreen.http_check:
    url: http://lb.example.com
    checks:
      - {path: "/api/items?limit=5", status: 200, body: '"items"'}
    repeat: 5
'''

RETURN = r'''
answers:
  description:
    - One item per check sent in the last round (named so, not C(results), which Ansible reserves for loops).
    - On failure only the failing answers, at most five; RV(failed_answers) counts them all.
  returned: always
  type: list
  elements: dict
  sample: [{url: "http://127.0.0.1:8001/health", method: GET, ok: true, status: 200, version: 1.10.0, msg: ""}]
versions:
  description: The distinct versions the answers told.
  returned: always
  type: list
  elements: str
  sample: [1.10.0]
version:
  description: The version told, when every answer told the same one; otherwise null.
  returned: always
  type: str
rounds:
  description: Rounds run.
  returned: always
  type: int
waited:
  description: Seconds spent.
  returned: always
  type: float
failed_answers:
  description: How many answers of the last round failed.
  returned: failure
  type: int
unsent:
  description: Checks not sent in check mode because their method could change something.
  returned: always
  type: list
  elements: str
'''

import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

from ansible_collections.zdt.bluegreen.plugins.module_utils.app_checks import CheckFailed, parse_checks, parse_version_rule, run_checks
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.module_args import bounds_problem

MAX_BODY = 1024 * 1024   # what is read of an answer's body
MAX_FAILED_SHOWN = 5


def fetcher(timeout, validate_certs):
    def fetch(method, url, headers):
        try:
            response = open_url(url, method=method, headers=headers, timeout=timeout, validate_certs=validate_certs,
                                follow_redirects='none')
            return dict(status=response.getcode(), headers=dict(response.headers.items()),
                        body=to_text(response.read(MAX_BODY), errors='replace'))
        except HTTPError as exc:
            body = exc.read(MAX_BODY) if hasattr(exc, 'read') else b''
            return dict(status=exc.code, headers=dict(exc.headers.items()) if exc.headers else {}, body=to_text(body, errors='replace'))
        except (URLError, socket.timeout, socket.error, ValueError) as exc:
            return dict(status=None, headers={}, body='', error=to_native(getattr(exc, 'reason', exc)))
    return fetch


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type='str', required=True),
            checks=dict(type='list', elements='dict', required=True),
            version=dict(type='dict', default={}),
            expect_version=dict(type='str'),
            repeat=dict(type='int', default=1),
            wait=dict(type='float', default=0),
            interval=dict(type='float', default=1),
            timeout=dict(type='float', default=5),
            validate_certs=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    problem = bounds_problem(p)
    if problem:
        module.fail_json(msg=problem)
    if not p['url'].startswith(('http://', 'https://')):
        module.fail_json(msg='url must start with http:// or https://, got %r' % p['url'])
    try:
        checks = parse_checks(p['checks'], 'checks')
        rule = parse_version_rule(p['version'], 'version')
        outcome = run_checks(p['url'], checks, fetcher(p['timeout'], p['validate_certs']), rule=rule,
                             expect_version=p['expect_version'], repeat=p['repeat'], wait=p['wait'], interval=p['interval'],
                             check_mode=module.check_mode)
    except CheckFailed as exc:
        # the failing answers only (at most MAX_FAILED_SHOWN), so a long round does not drown the message
        failed = [a for a in exc.result['answers'] if not a['ok']]
        module.fail_json(msg=to_native(exc), changed=False, failed_answers=len(failed),
                         **dict(exc.result, answers=failed[:MAX_FAILED_SHOWN]))
    except ZdtError as exc:
        module.fail_json(msg=to_native(exc), changed=False)
    for unsent in outcome['unsent']:
        module.warn('check mode: %s not sent (it could change something)' % unsent)
    versions = outcome['versions']
    module.exit_json(changed=False, version=versions[0] if len(versions) == 1 else None, **outcome)


if __name__ == '__main__':
    main()
