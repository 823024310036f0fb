"""haproxy_swap against a real HAProxy 2.6 from the sandbox and two small Python backends (127.0.0.1 only)."""
import shutil
import time

import pytest

from zdt_lab.http_backend import LoadGenerator
from zdt_lab.sandbox import free_port

from ansible_collections.zdt.bluegreen.plugins.module_utils import haproxy_master as hm

CANARY_TOLERANCE = 3   # percentage points, over 600 requests (roundrobin is deterministic; the slack covers health checks)


COLORS = {'blue': ['blue1'], 'green': ['green1']}


def swap(run_module, lb, check_mode=False, diff=False, **kw):
    args = {'socket': lb.socket, 'backend': 'app', 'colors': COLORS, 'active': 'blue'}
    args.update(kw)
    return run_module('haproxy_swap', args, check_mode=check_mode, diff=diff)


def versions(lb, count, backend_path='/'):
    seen = {}
    for _attempt in range(count):
        status, version = lb.get(backend_path)
        assert status == 200
        seen[version] = seen.get(version, 0) + 1
    return seen


# ---------------------------------------------------------------- behaviour

def test_swap_changes_exactly_and_is_idempotent(lb, run_module):
    lb.reset()
    first = swap(run_module, lb, active='blue')
    assert not first.get('failed'), first
    assert first['changed'] is True   # green1 ready -> drain
    assert first['current'] == {'active': 'blue', 'weight': 100,
                                'servers': {'blue1': {'admin_state': 'ready', 'weight': 100},
                                            'green1': {'admin_state': 'drain', 'weight': 100}}}
    second = swap(run_module, lb, active='blue')
    assert second['changed'] is False and second['previous'] == second['current'] == first['current']
    assert set(versions(lb, 20)) == {'1'}

    plan = swap(run_module, lb, active='green', check_mode=True, diff=True)
    assert plan['changed'] is True and plan['current']['active'] == 'green'
    assert plan['diff']['before']['servers']['green1']['admin_state'] == 'drain'
    assert plan['diff']['after']['servers']['green1']['admin_state'] == 'ready'
    assert lb.states()['green1']['admin_state'] == 'drain'   # check mode changed nothing

    done = swap(run_module, lb, active='green', diff=True)
    assert done['changed'] is True and done['previous'] == first['current']
    assert done['current']['active'] == 'green' and lb.states()['blue1']['admin_state'] == 'drain'
    assert set(versions(lb, 20)) == {'2'}
    # passing `previous` back restores the split; exactly here, as no server was in maint and the weights were ours
    back = swap(run_module, lb, active=done['previous']['active'], weight=done['previous']['weight'])
    assert back['current'] == first['current']


def test_rollback_from_previous_restores_the_split_not_a_maint_state(lb, run_module):
    """What the documentation promises: the previous color and share come back; a server that was in maint comes
    back as drain (the switch rules), not as maint."""
    lb.reset()
    with lb.client() as client:
        client.set_server_state('app', 'green1', 'maint')
    done = swap(run_module, lb, active='green')
    assert not done.get('failed'), done
    assert done['previous'] == {'active': 'blue', 'weight': 100,
                                'servers': {'blue1': {'admin_state': 'ready', 'weight': 100},
                                            'green1': {'admin_state': 'maint', 'weight': 100}}}
    back = swap(run_module, lb, active=done['previous']['active'], weight=done['previous']['weight'])
    assert not back.get('failed'), back
    assert back['current']['active'] == 'blue' and back['current']['weight'] == 100
    assert back['current']['servers']['green1'] == {'admin_state': 'drain', 'weight': 100}
    assert set(versions(lb, 10)) == {'1'}


def test_reload_failure_after_the_switch_reports_changed(lb, run_module, tmp_path):
    """The switch and the state file are done when the master socket fails: changed, with previous and current."""
    lb.reset()
    assert not swap(run_module, lb, active='blue').get('failed')
    state_file = tmp_path / 'server-state'
    result = swap(run_module, lb, active='green', state_file=str(state_file), master_socket=str(tmp_path / 'no-master.sock'))
    assert result.get('failed') and result['changed'] is True, result
    assert 'the switch was applied, but the reload failed' in result['msg'] and 'no-master.sock' in result['msg'], result
    assert result['previous']['active'] == 'blue' and result['previous']['servers']['green1']['admin_state'] == 'drain'
    assert result['current']['active'] == 'green' and result['current']['servers'] == lb.states()
    assert state_file.read_text().startswith('1\n# be_id')


def test_swap_under_load_has_no_errors(lb, run_module):
    """Keep-alive and connection-close clients, 5 s bounded: blue -> canary green 10 % -> green -> blue."""
    lb.reset()
    assert not swap(run_module, lb, active='blue').get('failed')
    load = LoadGenerator(lb.port, keepalive=6, close=6, duration=5.0, max_requests=40000).start()
    steps = []
    for delay, kw in ((0.8, {'active': 'green', 'weight': 10}), (0.8, {'active': 'green', 'weight': 50}),
                      (0.8, {'active': 'green'}), (1.0, {'active': 'blue'})):
        time.sleep(delay)
        result = swap(run_module, lb, **kw)
        assert not result.get('failed'), result
        steps.append(result['changed'])
    load.join()
    assert all(steps)
    assert load.errors == [] and load.non_2xx == 0, (load.errors[:5], load.statuses)
    assert load.ok > 500 and set(load.versions) == {'1', '2'}, (load.ok, load.versions)


@pytest.mark.parametrize('backend,colors,weight', [
    ('app', {'blue': ['blue1'], 'green': ['green1']}, 20),
    ('canary', {'blue': ['blue1'], 'green': ['green1', 'green2']}, 10),   # 2 servers share 10 %
    ('canary', {'blue': ['blue1'], 'green': ['green1', 'green2']}, 75),
])
def test_canary_split_within_tolerance(lb, run_module, backend, colors, weight):
    lb.reset(backend)
    result = run_module('haproxy_swap', {'socket': lb.socket, 'backend': backend, 'colors': colors, 'active': 'green',
                                         'weight': weight})
    assert not result.get('failed'), result
    assert result['current']['active'] == ('green' if weight > 50 else 'blue')
    assert result['current']['weight'] == max(weight, 100 - weight)
    total = 600
    seen = {}
    port = lb.port if backend == 'app' else lb.canary_port
    for _attempt in range(total):
        status, version = lb.get(port=port)
        assert status == 200
        seen[version] = seen.get(version, 0) + 1
    green_share = 100.0 * seen.get('2', 0) / total
    assert abs(green_share - weight) <= CANARY_TOLERANCE, (green_share, seen, result['current'])


def test_reload_after_swap_keeps_the_swapped_state(lb, run_module):
    lb.reset()
    assert not swap(run_module, lb, active='blue').get('failed')
    pids_before = lb.worker_pids()
    result = swap(run_module, lb, active='green', weight=90, state_file=lb.hp.state_file, master_socket=lb.hp.master_socket)
    assert not result.get('failed'), result
    pids_after = lb.worker_pids()
    assert pids_after and set(pids_after).isdisjoint(pids_before)   # the module reloaded: a new worker
    expected = {'blue1': {'admin_state': 'ready', 'weight': 10}, 'green1': {'admin_state': 'ready', 'weight': 90}}
    assert lb.states() == expected == result['current']['servers']
    with open(lb.hp.state_file, encoding='utf-8') as handle:
        assert handle.read().startswith('1\n# be_id')
    # a second, independent reload (the sandbox's, state dumped first) keeps it too
    lb.hp.reload()
    assert lb.states() == expected
    seen = versions(lb, 100)
    assert abs(seen.get('2', 0) - 90) <= CANARY_TOLERANCE
    # and a full switch persisted the same way keeps the drain across the reload
    result = swap(run_module, lb, active='green', state_file=lb.hp.state_file, master_socket=lb.hp.master_socket)
    assert not result.get('failed'), result
    lb.hp.reload()
    assert lb.states()['blue1']['admin_state'] == 'drain' and lb.states()['green1']['admin_state'] == 'ready'


def test_invalid_config_is_refused_and_the_running_lb_untouched(lb, tmp_path):
    lb.reset()
    bad = tmp_path / 'bad.cfg'
    bad.write_text(lb.config + '\nbackend broken\n    server x 127.0.0.1:1 bogus_keyword\n')
    with pytest.raises(hm.ConfigInvalid, match='bogus_keyword'):
        hm.validate_config(str(bad))
    hm.validate_config(lb.hp.cfg_path)
    # even a reload that finds a broken file in place is refused by HAProxy, reported as failed, and the old worker serves
    pids = lb.worker_pids()
    saved = str(tmp_path / 'good.cfg')
    shutil.copy(lb.hp.cfg_path, saved)
    try:
        shutil.copy(str(bad), lb.hp.cfg_path)
        with pytest.raises(hm.HAProxyReloadError, match='reload failed'):
            hm.MasterClient(lb.hp.master_socket, timeout=5).reload(timeout=10)
    finally:
        shutil.copy(saved, lb.hp.cfg_path)
    assert lb.worker_pids() == pids
    assert lb.get()[0] == 200
    hm.MasterClient(lb.hp.master_socket, timeout=5).reload(timeout=10)   # and recovers with the good file
    assert lb.get()[0] == 200


def test_guardrails_on_a_down_color(lb, run_module):
    lb.reset('mixed')
    colors = {'blue': ['blue1'], 'green': ['green1']}   # green1 points at a closed port: DOWN
    args = {'socket': lb.socket, 'backend': 'mixed', 'colors': colors}
    deadline = time.monotonic() + 10
    while lb.servers('mixed')['green1'].up and time.monotonic() < deadline:
        time.sleep(0.1)
    refused = run_module('haproxy_swap', dict(args, active='green'))
    assert refused['failed'] and 'green1' in refused['msg'] and 'force' in refused['msg']
    forced = run_module('haproxy_swap', dict(args, active='green', force=True))
    assert forced['failed'] and 'without a server that is both ready and passing' in forced['msg']
    assert lb.states('mixed')['blue1']['admin_state'] == 'ready'   # nothing changed
    canary = run_module('haproxy_swap', dict(args, active='green', weight=10, force=True))
    assert not canary.get('failed') and canary['changed'], canary
    assert 'force: activating color green although green1' in str(canary.get('warnings')), canary
    # a color in maint is woken to drain for its checks, judged, and put back to maint when refused
    with lb.client() as client:
        client.set_server_state('mixed', 'green1', 'maint')
    refused = run_module('haproxy_swap', dict(args, active='green', timeout=3))
    assert refused['failed']
    assert lb.states('mixed')['green1']['admin_state'] == 'maint'
    lb.reset('app')
    with lb.client() as client:
        client.set_server_state('app', 'green1', 'maint')
    woken = swap(run_module, lb, active='green')   # healthy server in maint: woken, checked, activated
    assert not woken.get('failed') and woken['current']['active'] == 'green', woken


@pytest.mark.parametrize('override,needle', [
    ({'socket': '/nonexistent/admin.sock'}, 'cannot connect to HAProxy socket /nonexistent/admin.sock'),
    ({'socket': 'ipv4@127.0.0.1'}, 'ipv4@host:port'),
    ({'backend': 'nope'}, "Can't find backend"),
    ({'colors': {'blue': ['blue1'], 'green': ['greenX']}}, 'No such server in the backend: greenX'),
    ({'active': 'red'}, 'not one of the colors'),
    ({'weight': 0}, 'between 1 and 100'),
    ({'master_socket': '/x'}, 'state_file'),
])
def test_clear_errors(lb, run_module, override, needle):
    before = lb.states()
    result = swap(run_module, lb, **dict({'active': 'green'}, **override))
    assert result.get('failed') and needle in result['msg'], result
    assert lb.states() == before


def test_tcp_runtime_socket(lb, run_module):
    """The same API over ipv4@host:port: the sandbox config has no TCP socket, so add one through a reload."""
    port = free_port()
    config = lb.config.replace('    stats timeout 30s\n', '    stats timeout 30s\n    stats socket ipv4@127.0.0.1:%d level admin\n' % port)
    lb.hp.reload(config_text=config)
    try:
        result = swap(run_module, lb, active='blue', socket='ipv4@127.0.0.1:%d' % port)
        assert not result.get('failed'), result
        assert result['current']['active'] == 'blue'
    finally:
        lb.hp.reload(config_text=lb.config)
    lb.wait_all_up()


# ---------------------------------------------------------------- servers declared `disabled` in the configuration

PARKED = {'blue': ['blue1'], 'green': ['green1', 'green2']}


def raw_states(lb, backend):
    """{server: (srv_admin_state, srv_op_state, show stat status)} as HAProxy reports them."""
    with lb.client() as client:
        rows = client.show_servers_state(backend)
        status = dict((row['svname'], row['status']) for row in client.show_stat(backend))
    return dict((row['srv_name'], (row['srv_admin_state'], row['srv_op_state'], status[row['srv_name']])) for row in rows)


def assert_readers_agree(lb, backend):
    """Our admin state says maint exactly where HAProxy's own status says MAINT, and drain where it says DRAIN."""
    raw = raw_states(lb, backend)
    states = lb.states(backend)
    for name, (bits, op_state, status) in raw.items():
        assert (states[name]['admin_state'] == 'maint') == status.startswith('MAINT'), (name, bits, op_state, status)
        if status == 'DRAIN':
            assert states[name]['admin_state'] == 'drain', (name, bits, op_state, status)
    return raw


@pytest.mark.parametrize('backend', ['parked', 'parked_nc'])
def test_servers_disabled_in_the_configuration_switch_under_keepalive_load(lb, run_module, backend):
    """green1/green2 are `disabled` in haproxy.cfg (with and without health checks): the switch activates them with
    0 failed requests, and HAProxy's 0x04 bit, kept after they left maintenance, never reads as maint."""
    lb.reload_from_config()
    raw = assert_readers_agree(lb, backend)
    assert raw['green1'][:2] == raw['green2'][:2] == (5, 0)   # `disabled`: configuration + forced maintenance, stopped
    assert raw['blue1'][:2] == (0, 2)
    args = {'socket': lb.socket, 'backend': backend, 'colors': PARKED}
    load = LoadGenerator(lb.frontends[backend], keepalive=8, close=2, duration=30.0, max_requests=60000).start()
    results = []
    try:
        for kw in ({'active': 'green', 'weight': 10}, {'active': 'green'}, {'active': 'blue'}, {'active': 'green'}):
            time.sleep(0.5)
            results.append(run_module('haproxy_swap', dict(args, **kw)))
            assert not results[-1].get('failed'), results[-1]
            assert_readers_agree(lb, backend)
        time.sleep(0.5)
    finally:
        load.stop_event.set()
        load.join()
    assert load.errors == [] and load.non_2xx == 0, (load.errors[:5], load.statuses)
    assert load.ok > 200 and set(load.versions) == {'1', '2'}, (load.ok, load.versions)
    assert [r['changed'] for r in results] == [True, True, True, True]
    assert results[0]['previous']['servers']['green1'] == {'admin_state': 'maint', 'weight': 100}
    assert results[0]['current']['servers']['green1']['admin_state'] == 'ready'
    assert results[2]['current']['servers']['green1'] == {'admin_state': 'drain', 'weight': 100}
    assert results[3]['current'] == {'active': 'green', 'weight': 100,
                                     'servers': {'blue1': {'admin_state': 'drain', 'weight': 100},
                                                 'green1': {'admin_state': 'ready', 'weight': 100},
                                                 'green2': {'admin_state': 'ready', 'weight': 100}}}
    raw = raw_states(lb, backend)
    assert raw['green1'][:2] == raw['green2'][:2] == (4, 2)   # the 0x04 bit stays while they serve
    assert raw['green1'][2] == ('UP' if backend == 'parked' else 'no check')
    assert raw['blue1'][:2] == (8, 2)
    again = run_module('haproxy_swap', dict(args, active='green'))
    assert not again.get('failed') and again['changed'] is False, again
    seen = dict((v, 0) for v in ('1', '2'))
    for _attempt in range(20):
        status, version = lb.get(backend=backend)
        assert status == 200
        seen[version] += 1
    assert seen == {'1': 0, '2': 20}


def test_servers_disabled_in_the_configuration_keep_their_switch_across_a_reload(lb, run_module):
    """Persisted and reloaded through the module: the new worker loads 4 (ready) from the state file although the
    configuration still says `disabled`, and the module's read-back accepts it."""
    lb.reload_from_config()
    args = {'socket': lb.socket, 'backend': 'parked', 'colors': PARKED, 'state_file': lb.hp.state_file,
            'master_socket': lb.hp.master_socket}
    pids = lb.worker_pids()
    result = run_module('haproxy_swap', dict(args, active='green', weight=50))
    assert not result.get('failed'), result
    assert set(lb.worker_pids()).isdisjoint(pids)
    assert lb.states('parked') == result['current']['servers']
    assert dict((n, v[:2]) for n, v in raw_states(lb, 'parked').items()) == {'blue1': (0, 2), 'green1': (4, 2), 'green2': (4, 2)}
    lb.wait_all_up('parked')
    seen = versions_of(lb, 'parked', 40)
    assert seen.get('1', 0) and seen.get('2', 0), seen
    back = run_module('haproxy_swap', dict(args, active='blue'))
    assert not back.get('failed'), back
    assert dict((n, v[:2]) for n, v in raw_states(lb, 'parked').items()) == {'blue1': (0, 2), 'green1': (12, 2), 'green2': (12, 2)}
    assert lb.states('parked')['green1'] == {'admin_state': 'drain', 'weight': 50}


def versions_of(lb, backend, count):
    seen = {}
    for _attempt in range(count):
        status, version = lb.get(backend=backend)
        assert status == 200
        seen[version] = seen.get(version, 0) + 1
    return seen
