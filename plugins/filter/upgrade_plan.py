# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters behind the playbooks' plans; the logic is module_utils/upgrade_plan.py, the version order Ansible's ``version`` test."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.test.core import version_compare

from ansible_collections.zdt.bluegreen.plugins.module_utils import upgrade_plan as planner

SCHEMES = ('loose', 'semver', 'pep440')


def version_order(scheme):
    """compare(a, b) -> -1, 0, 1 by Ansible's ``version`` test with ``version_type=scheme``."""
    if scheme not in SCHEMES:
        raise AnsibleFilterError('zdt_version_scheme must be one of %s, got %r' % (', '.join(SCHEMES), scheme))

    def compare(a, b):
        try:
            if version_compare(str(a), str(b), 'eq', version_type=scheme):
                return 0
            return 1 if version_compare(str(a), str(b), 'gt', version_type=scheme) else -1
        except AnsibleFilterError as exc:
            raise AnsibleFilterError('cannot order versions %r and %r with zdt_version_scheme %s: %s' % (a, b, scheme, to_native(exc)))
    return compare


def upgrade_plan(hosts, target, lbs, colors=('blue', 'green'), scheme='loose'):
    target = str(target).strip() if target is not None else ''
    plan = planner.plan_upgrade(target or None, list(colors), dict(hosts), dict(lbs), version_order(scheme))
    plan['summary'] = planner.describe(plan)
    return plan


def deployed_hosts(hosts):
    return planner.deployed_hosts(dict(hosts))


class FilterModule(object):

    def filters(self):
        return {'upgrade_plan': upgrade_plan, 'deployed_hosts': deployed_hosts}
