# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the app contract; the logic is module_utils/app_contract.py and app_checks.py."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.zdt.bluegreen.plugins.module_utils import app_checks, app_contract
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import SpecError


def _wrap(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except SpecError as exc:
        raise AnsibleFilterError(to_native(exc))


def validate_app(app, field='zdt_app'):
    return _wrap(app_contract.validate_app, app, field)


def artifact_source(app, version):
    """Runs on the controller, so a controller path is looked at where it is; reads (templates) artifact and checksum."""
    if 'artifact' not in app:
        raise AnsibleFilterError('zdt_app.artifact: required field is missing')
    return _wrap(app_contract.artifact_source, app['artifact'], app['name'], str(version), checksum=app.get('checksum') or '')


def validate_checks(checks, field):
    """The checks as given, once each is valid (a failing one names its field)."""
    _wrap(app_checks.parse_checks, checks, field)
    return checks


class FilterModule(object):

    def filters(self):
        return {'app_contract': validate_app, 'artifact_source': artifact_source, 'http_checks': validate_checks}
