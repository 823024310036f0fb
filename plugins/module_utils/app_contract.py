# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app contract (``zdt_app``): validation, defaults and where a release's artifact comes from (no Ansible import).

The roles upgrade any HTTP service described by ``zdt_app``; :func:`validate_app` checks it before anything changes
and fills the defaults, raising SpecError naming the field (``zdt_app.health.path``).  Messages never quote a
``secret_env`` value.  :func:`artifact_source` says how the controller fetches the artifact and under which name it
is cached.  The artifact and checksum are templated with the version being deployed, so only
:func:`artifact_source` reads them: :func:`validate_app` leaves them untouched (Ansible templates a value when it is
read, and ``zdt_version`` is only set where a version is deployed).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import posixpath
import re

from ansible_collections.zdt.bluegreen.plugins.module_utils.app_artifact import ARCHIVE_SUFFIXES
from ansible_collections.zdt.bluegreen.plugins.module_utils.app_checks import parse_check, parse_version_rule
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import SpecError

NAME_RE = re.compile(r'^[a-z0-9_-]{1,48}$')
USER_RE = re.compile(r'^[a-z_][a-z0-9_-]{0,31}$')
ENV_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
SHA256_RE = re.compile(r'^[0-9a-fA-F]{64}$')
URL_SCHEMES = ('http://', 'https://', 'file://')
RESERVED_ENV = ('ZDT_BIND', 'ZDT_PORT', 'ZDT_COLOR', 'ZDT_VERSION')
KEYS = ('name', 'artifact', 'checksum', 'install', 'command', 'env', 'secret_env', 'user', 'base_dir', 'stop_timeout',
        'health', 'version')
HEALTH_DEFAULTS = dict(path='/health', status=200, timeout=60)


def _text(value, field, allow_empty=False, one_line=True):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SpecError(field, 'must be a string, got %s' % type(value).__name__)
    value = str(value)
    if not allow_empty and not value.strip():
        raise SpecError(field, 'must not be empty')
    if one_line and ('\n' in value or '\r' in value):
        raise SpecError(field, 'must be one line')
    if '\x00' in value:
        raise SpecError(field, 'must not contain a NUL character')
    return value


def _number(value, field, default):
    if value is None:
        return default
    if isinstance(value, bool):
        raise SpecError(field, 'must be a number of seconds')
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(field, 'must be a number of seconds, got %r' % (value,))
    if number <= 0:
        raise SpecError(field, 'must be greater than 0, got %r' % (value,))
    return int(number) if number == int(number) else number


def _environment(value, field, secret, taken=()):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(field, 'must be a mapping of variable name to value')
    result = {}
    for key in sorted(value, key=str):
        name = str(key)
        where = '%s.%s' % (field, name)
        if not ENV_NAME_RE.match(name):
            raise SpecError(where, 'invalid environment variable name %r' % name)
        if name in RESERVED_ENV:
            raise SpecError(where, '%s is set by the collection for every instance' % name)
        if name in taken:
            raise SpecError(where, 'is also in zdt_app.env; give it in one of them')
        raw = value[key]
        if raw is None:
            raw = ''
        if isinstance(raw, bool):
            raw = 'true' if raw else 'false'
        if not isinstance(raw, (str, int, float)):
            raise SpecError(where, 'must be a string or a number')
        text = str(raw)
        if '\n' in text or '\r' in text or '\x00' in text:
            # never quote the value: it may be a secret
            raise SpecError(where, 'must be one line without NUL characters%s' % (' (value not shown)' if secret else ''))
        result[name] = text
    return result


def validate_checksum(checksum, field='zdt_app.checksum'):
    """'' or sha256:<64 hex> or sha256:<URL of a file holding it>."""
    if checksum in (None, ''):
        return ''
    text = _text(checksum, field)
    if not text.startswith('sha256:'):
        raise SpecError(field, 'must be sha256:<hex> or sha256:<URL of a file holding it>, got %r' % text)
    rest = text[len('sha256:'):]
    if not (SHA256_RE.match(rest) or rest.startswith(URL_SCHEMES)):
        raise SpecError(field, 'must be sha256:<64 hex digits> or sha256:<http(s) or file URL>, got %r' % text)
    return text


def validate_app(app, field='zdt_app'):
    """The contract with its defaults filled in; SpecError naming the field for anything invalid."""
    if not isinstance(app, dict):
        raise SpecError(field, 'must be a mapping (name, artifact, command, ...), got %s' % type(app).__name__)
    unknown = sorted(set(str(k) for k in app) - set(KEYS))
    if unknown:
        raise SpecError('%s.%s' % (field, unknown[0]), 'unknown key (allowed: %s)' % ', '.join(sorted(KEYS)))
    for key in ('name', 'artifact', 'command'):
        if key not in app or (key != 'artifact' and app.get(key) in (None, '')):
            raise SpecError('%s.%s' % (field, key), 'required field is missing')
    name = _text(app['name'], field + '.name')
    if not NAME_RE.match(name):
        raise SpecError(field + '.name', 'must be 1-48 of a-z, 0-9, _ and -, got %r' % name)
    user = _text(app.get('user') or 'zdt-%s' % name, field + '.user')
    if not USER_RE.match(user):
        raise SpecError(field + '.user', 'must be a user name (a-z, 0-9, _ and -, at most 32), got %r' % user)
    base_dir = _text(app.get('base_dir') or '/opt/%s' % name, field + '.base_dir')
    if not base_dir.startswith('/') or '..' in base_dir.split('/'):
        raise SpecError(field + '.base_dir', 'must be an absolute path without .., got %r' % base_dir)
    health = dict(HEALTH_DEFAULTS)
    given = app.get('health') or {}
    if not isinstance(given, dict):
        raise SpecError(field + '.health', 'must be a mapping {path, status, timeout}')
    unknown = sorted(set(given) - set(HEALTH_DEFAULTS))
    if unknown:
        raise SpecError('%s.health.%s' % (field, unknown[0]), 'unknown key (allowed: path, status, timeout)')
    health.update((k, v) for k, v in given.items() if v is not None)
    check = parse_check({'path': health['path'], 'status': health['status']}, field + '.health')
    health.update(path=check.path, status=list(check.status), timeout=_number(health['timeout'], field + '.health.timeout', 60))
    parse_version_rule(app.get('version') or {}, field + '.version')
    env = _environment(app.get('env'), field + '.env', secret=False)
    return dict(
        name=name,
        install=_text(app.get('install') or '', field + '.install', allow_empty=True, one_line=False),
        command=_text(app['command'], field + '.command'),
        env=env, secret_env=_environment(app.get('secret_env'), field + '.secret_env', secret=True, taken=env),
        user=user, base_dir=base_dir.rstrip('/') or '/',
        stop_timeout=_number(app.get('stop_timeout'), field + '.stop_timeout', 30),
        health=health, version=dict(app.get('version') or {}))


def artifact_source(artifact, name, version, checksum='', isdir=os.path.isdir):
    """How the controller gets the artifact: {kind: url|file|directory, url, path, cache_name, checksum}.

    ``artifact`` is an http(s) or file URL or a controller path; ``isdir`` tells whether a controller path is a
    directory.  ``cache_name`` is ``<name>-<version>-<basename>``: the version keeps releases apart, the basename
    keeps the extension the unpacker needs.  A checksum with a directory is refused: there is no file to check.
    """
    checksum = validate_checksum(checksum)
    text = _text(artifact, 'zdt_app.artifact').strip()
    if text.startswith(URL_SCHEMES) and not text.startswith('file://'):
        path, kind, local = text.split('://', 1)[1].split('?', 1)[0].split('#', 1)[0], 'url', None
        url = text
    else:
        local = '/' + text[len('file://'):].lstrip('/') if text.startswith('file://') else os.path.abspath(text)
        path, kind, url = local, 'file', 'file://' + local
    if kind == 'file' and isdir(local):
        if checksum:
            raise SpecError('zdt_app.checksum', 'a checksum needs an artifact file, but %s is a directory' % local)
        return dict(kind='directory', url=None, path=local, cache_name='%s-%s.tar.gz' % (name, version), checksum='')
    base = posixpath.basename(path.rstrip('/'))
    if not base.lower().endswith(ARCHIVE_SUFFIXES):
        raise SpecError('zdt_app.artifact', '%s must name a .tar.gz, .tgz or .zip file, or a directory on the controller'
                        % artifact)
    return dict(kind=kind, url=url, path=local, cache_name='%s-%s-%s' % (name, version, base), checksum=checksum)
