"""Planning an upgrade from the live state, with versions in Ansible's order (no server)."""
import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.zdt.bluegreen.plugins.filter.upgrade_plan import upgrade_plan, version_order
from ansible_collections.zdt.bluegreen.plugins.module_utils import upgrade_plan as planner

LB = {'lb1': {'active': 'blue', 'weight': 100}}


def host(color, version=None, healthy=True, recorded=None):
    return {'color': color, 'version': version, 'healthy': healthy and version is not None, 'recorded': recorded}


@pytest.mark.parametrize('scheme', ['loose', 'semver', 'pep440'])
def test_version_order_is_not_string_order(scheme):
    compare = version_order(scheme)
    assert compare('1.9.0', '1.10.0') == -1 and compare('1.10.0', '1.9.0') == 1 and compare('1.10.0', '1.10.0') == 0


def test_unknown_scheme_and_unorderable_versions_fail_clearly():
    with pytest.raises(AnsibleFilterError, match='zdt_version_scheme must be one of'):
        version_order('calver')
    with pytest.raises(AnsibleFilterError, match="cannot order versions 'banana' and '1.0.0' with zdt_version_scheme semver"):
        version_order('semver')('banana', '1.0.0')


def test_fresh_upgrade_goes_to_the_idle_color():
    plan = upgrade_plan({'b1': host('blue', '1.9.0'), 'g1': host('green')}, '1.10.0', LB)
    assert (plan['live'], plan['new'], plan['old']) == ('blue', 'green', 'blue')
    assert plan['live_version'] == '1.9.0' and not plan['switched'] and plan['old_running'] and plan['problems'] == []
    assert plan['old_version'] == '1.9.0' and 'version 1.10.0 goes to green' in plan['summary']
    assert 'blue: 1.9.0; green: down' in plan['summary']


def test_a_downgrade_is_refused_naming_both_versions():
    plan = upgrade_plan({'b1': host('blue', '1.10.0'), 'g1': host('green')}, '1.9.0', LB)
    assert plan['downgrade']
    assert plan['problems'] == ['the live color blue runs version 1.10.0, newer than the target 1.9.0: an upgrade never '
                                'downgrades (rollback.yml goes back)']


def test_a_finished_upgrade_is_recognised():
    plan = upgrade_plan({'b1': host('blue', '1.9.0', healthy=False, recorded='1.9.0'), 'g1': host('green', '1.10.0')}, '1.10.0',
                        {'lb1': {'active': 'green', 'weight': 100}})
    assert plan['new'] == 'green' and plan['switched'] and plan['old_version'] == '1.9.0' and not plan['old_running']


def test_a_partly_switched_upgrade_continues_on_the_color_that_runs_the_target():
    plan = upgrade_plan({'b1': host('blue', '1'), 'g1': host('green', '2')}, '2', {'lb1': {'active': 'blue', 'weight': 50}})
    assert plan['new'] == 'green' and plan['old'] == 'blue' and not plan['switched']


def test_rollback_possible_while_any_old_host_is_healthy_and_the_others_are_named():
    hosts = {'b1': host('blue', '1'), 'b2': host('blue', '1', healthy=False), 'g1': host('green')}
    plan = upgrade_plan(hosts, '2', LB)
    assert plan['old_running'] and plan['old_healthy'] == ['b1'] and plan['old_unhealthy'] == ['b2']
    assert 'not answering their health check: b2' in plan['summary']


def test_load_balancers_that_disagree_or_cannot_be_read_stop_the_run():
    lbs = {'lb1': {'active': 'blue', 'weight': 100}, 'lb2': {'active': 'green', 'weight': 100}}
    plan = upgrade_plan({'b1': host('blue', '1'), 'g1': host('green', '2')}, '2', lbs)
    assert plan['lbs_disagree'] and plan['live'] == ''
    assert plan['problems'] == ['the load balancers disagree (lb1: blue 100 %, lb2: green 100 %); put them back on one color '
                                'with haproxy_swap before going on']
    lbs = {'lb1': {'active': 'blue', 'weight': 100}, 'lb2': {'active': 'blue', 'weight': 90}}
    assert 'lb2: blue 90 %' in upgrade_plan({'b1': host('blue', '1')}, '2', lbs)['problems'][0]
    lbs = {'lb1': {'active': 'blue', 'weight': 100}, 'lb2': {'error': 'socket gone'}}
    plan = upgrade_plan({'b1': host('blue', '1')}, '2', lbs)
    assert plan['problems'] == ['load balancer lb2 could not be read: socket gone'] and plan['lbs_unreadable'] == ['lb2']


def test_without_a_target_the_live_version_is_taken():
    hosts = {'b1': host('blue', '1.9.0'), 'g1': host('green', '1.10.0')}
    assert upgrade_plan(hosts, '', LB)['target'] == '1.9.0'
    assert upgrade_plan(hosts, None, {'lb1': {'error': 'down'}})['target'] == '1.10.0'
    assert upgrade_plan({'g1': host('green')}, '', LB)['target'] is None


def test_deployed_hosts_answer_or_hold_a_record():
    hosts = {'b1': host('blue', '1'), 'g1': host('green', healthy=False, recorded='2'), 'g2': host('green')}
    assert planner.deployed_hosts(hosts) == ['b1', 'g1']
    assert planner.deployed_hosts({'g2': host('green')}) == []
