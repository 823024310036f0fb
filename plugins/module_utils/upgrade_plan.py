# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan an upgrade, a rollback or a first deploy from the live state (pure, no I/O, no Ansible import).

Inputs are what the playbooks read before they change anything: per app host its color, whether it answers its
health check and the version it tells (or has recorded), and per load balancer the color that has the larger share
of the backend and that share.  Versions are compared with a ``compare(a, b)`` function passed in (the playbooks use
Ansible's ``version`` test with ``zdt_version_scheme``), so string order never decides (``1.9.0 < 1.10.0``).

Anything that must stop a run before it changes something is returned in ``problems`` (each a full sentence),
never raised: the playbook asserts on it and shows every problem at once.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


def _max_version(versions, compare):
    best = None
    for version in versions:
        if version is not None and (best is None or compare(version, best) > 0):
            best = version
    return best


def _lb_view(lbs):
    """(live color, its weight, unreadable load balancers, problems) from every load balancer's view; they must agree."""
    problems = []
    unreadable = sorted(name for name, lb in lbs.items() if lb.get('error'))
    for name in unreadable:
        problems.append('load balancer %s could not be read: %s' % (name, lbs[name]['error']))
    views = dict((name, (lb.get('active') or '', int(lb.get('weight') or 0))) for name, lb in lbs.items() if not lb.get('error'))
    distinct = sorted(set(views.values()))
    if len(distinct) > 1:
        problems.append('the load balancers disagree (%s); put them back on one color with haproxy_swap before going on'
                        % ', '.join('%s: %s %d %%' % (name, view[0] or 'no color', view[1]) for name, view in sorted(views.items())))
    live, weight = distinct[0] if len(distinct) == 1 else ('', 0)
    return live, weight, unreadable, len(distinct) > 1, problems


def color_versions(colors, hosts):
    """{color: [version or None per host, in host order]} and {color: [host names]}."""
    versions = dict((c, []) for c in colors)
    members = dict((c, []) for c in colors)
    for name in sorted(hosts):
        host = hosts[name]
        if host.get('color') in versions:
            versions[host['color']].append(host.get('version') if host.get('healthy') else None)
            members[host['color']].append(name)
    return versions, members


def plan_upgrade(target, colors, hosts, lbs, compare):
    """The upgrade's plan: which color gets ``target``, which is old, what is already done, and what stops the run.

    ``hosts``: {name: {color, healthy, version, recorded}}; ``lbs``: {name: {active, weight}} or {name: {error}}.
    Without a ``target`` (reading the state only) the live color's version is taken, else the newest one answering.
    """
    versions, members = color_versions(colors, hosts)
    live, weight, unreadable, disagree, problems = _lb_view(lbs)
    if not target:
        target = _max_version(versions.get(live, []), compare) or _max_version([v for c in colors for v in versions[c]], compare)
    target = str(target) if target else None
    on_target = [c for c in colors if target and versions[c] and all(v is not None and compare(v, target) == 0 for v in versions[c])]
    if live in on_target:
        new = live
    elif on_target:
        new = on_target[0]
    else:
        new = next((c for c in colors if c != live), colors[0])
    old = next((c for c in colors if c != new), None)
    live_version = _max_version(versions.get(live, []), compare) if live else None
    downgrade = live_version is not None and target is not None and compare(live_version, target) > 0
    if downgrade:
        problems.append('the live color %s runs version %s, newer than the target %s: an upgrade never downgrades '
                        '(rollback.yml goes back)' % (live, live_version, target))
    old_hosts = members.get(old, [])
    healthy_old = [h for h in old_hosts if hosts[h].get('healthy')]
    recorded_old = [hosts[h].get('recorded') for h in old_hosts]
    return dict(
        target=target, live=live, live_weight=weight, live_version=live_version, new=new, old=old,
        versions=versions, members=members,
        switched=bool(live) and live == new and weight == 100,
        old_running=bool(healthy_old),
        old_healthy=healthy_old,
        old_unhealthy=[h for h in old_hosts if not hosts[h].get('healthy')],
        old_version=_max_version([hosts[h].get('version') for h in healthy_old] + recorded_old, compare),
        downgrade=downgrade, lbs_unreadable=unreadable, lbs_disagree=disagree, problems=problems)


def deployed_hosts(hosts):
    """App hosts that show an earlier deploy: they answer with a version or hold a color's version record."""
    return sorted(name for name, host in hosts.items() if (host.get('healthy') and host.get('version')) or host.get('recorded'))


def describe(plan):
    """One line for the operator."""
    live = '%s (%d %%, version %s)' % (plan['live'], plan['live_weight'], plan['live_version'] or 'unknown') if plan['live'] else 'none'
    versions = '; '.join('%s: %s' % (c, ', '.join(v or 'down' for v in vs) or 'no hosts') for c, vs in sorted(plan['versions'].items()))
    text = 'live color %s; version %s goes to %s, old color %s (%s)' % (live, plan['target'], plan['new'], plan['old'], versions)
    if plan['switched']:
        text += '; the switch is already done'
    if plan['old_unhealthy']:
        text += '; old color hosts not answering their health check: %s' % ', '.join(plan['old_unhealthy'])
    return text
