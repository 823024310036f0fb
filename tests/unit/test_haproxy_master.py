"""Unit tests for the HAProxy master-CLI client and the configuration check (haproxy_master)."""
import os

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils import haproxy_master as hm
from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_runtime import HAProxyError

PROC_BEFORE = ('#<PID>          <type>          <reloads>       <uptime>        <version>      \n'
               '5983            master          0 [failed: 0]   0d00h00m14s     2.6.12-1+deb12u4\n'
               '# workers\n5985            worker          0               0d00h00m14s     2.6.12-1+deb12u4\n# programs\n')
PROC_OK = ('#<PID>          <type>          <reloads>       <uptime>        <version>      \n'
           '5983            master          1 [failed: 0]   0d00h00m16s     2.6.12-1+deb12u4\n'
           '# workers\n6432            worker          0               0d00h00m01s     2.6.12-1+deb12u4\n'
           '# old workers\n5985            worker          1               0d00h00m16s     2.6.12-1+deb12u4\n# programs\n')
PROC_FAILED = ('#<PID>          <type>          <reloads>       <uptime>        <version>      \n'
               '5983            master          1 [failed: 1]   0d00h00m34s     2.6.12-1+deb12u4\n'
               '# workers\n5985            worker          1               0d00h00m19s     2.6.12-1+deb12u4\n# programs\n')


def test_parse_show_proc_and_reload_verdicts():
    before = hm.parse_show_proc(PROC_BEFORE)
    assert before['master'] == {'pid': 5983, 'reloads': 0, 'failed': 0}
    assert before['workers'] == [{'pid': 5985, 'reloads': 0}]
    ok = hm.parse_show_proc(PROC_OK)
    assert ok['old_workers'] == [{'pid': 5985, 'reloads': 1}]
    assert hm.reload_succeeded(before, ok) is True
    assert hm.reload_succeeded(before, hm.parse_show_proc(PROC_FAILED)) is False
    assert hm.reload_succeeded(before, before) is None     # master not re-executed yet
    with pytest.raises(HAProxyError):
        hm.parse_show_proc('Unknown command\n')


def proc(reloads, failed, workers, old_workers=()):
    return {'master': {'pid': 1, 'reloads': reloads, 'failed': failed},
            'workers': [{'pid': pid, 'reloads': r} for pid, r in workers],
            'old_workers': [{'pid': pid, 'reloads': r} for pid, r in old_workers]}


def test_reload_verdict_compares_the_cumulative_failed_counter():
    """The master's failed counter never goes down: an earlier failed reload must not fail a later one."""
    before = proc(1, 1, [(10, 1)])                       # a reload failed some time ago; worker 10 serves
    assert hm.reload_succeeded(before, proc(2, 1, [(11, 0)], [(10, 2)])) is True     # new worker: success
    assert hm.reload_succeeded(before, proc(2, 1, [(10, 2)])) is None                # not decided yet, not failed
    assert hm.reload_succeeded(before, proc(2, 2, [(10, 2)])) is False               # this reload failed
    assert hm.reload_succeeded(proc(0, 0, [(10, 0)]), proc(1, 1, [(10, 1)])) is False


def test_master_reload_succeeds_after_an_earlier_failed_reload(fake):
    earlier_failure = PROC_FAILED   # reloads 1, failed 1, worker 5985 still serving
    later_success = ('#<PID>          <type>          <reloads>       <uptime>        <version>      \n'
                     '5983            master          2 [failed: 1]   0d00h00m40s     2.6.12-1+deb12u4\n'
                     '# workers\n7001            worker          0               0d00h00m01s     2.6.12-1+deb12u4\n'
                     '# old workers\n5985            worker          2               0d00h00m25s     2.6.12-1+deb12u4\n# programs\n')
    pending = ('#<PID>          <type>          <reloads>       <uptime>        <version>      \n'
               '5983            master          2 [failed: 1]   0d00h00m40s     2.6.12-1+deb12u4\n'
               '# workers\n5985            worker          2               0d00h00m25s     2.6.12-1+deb12u4\n# programs\n')
    state = {'proc': [earlier_failure]}

    def replies(line):
        if line == 'show proc':
            return state['proc'].pop(0) if len(state['proc']) > 1 else state['proc'][0]
        if line == 'reload':
            state['proc'] = [pending, pending, later_success]   # the master re-executed; the new worker comes a bit later
            return None
        return 'Unknown command'
    cli = fake(replies, prompt='master> ', first_prompt='master> ')
    result = hm.MasterClient(cli.path, timeout=2).reload(timeout=2, poll=0.01)
    assert [w['pid'] for w in result['after']['workers']] == [7001]


def test_master_reload_reads_success_from_show_proc(fake):
    state = {'proc': PROC_BEFORE}

    def replies(line):
        if line == 'show proc':
            return state['proc']
        if line == 'reload':
            state['proc'] = PROC_OK
            return None   # 2.6 closes the connection without a status
        return 'Unknown command'
    cli = fake(replies, prompt='master> ', first_prompt='master> ')
    result = hm.MasterClient(cli.path, timeout=2).reload(timeout=2, poll=0.01)
    assert result['after']['workers'][0]['pid'] == 6432
    assert 'reload' in cli.received


def test_master_reload_failure_is_reported(fake):
    state = {'proc': PROC_BEFORE}

    def replies(line):
        if line == 'show proc':
            return state['proc']
        state['proc'] = PROC_FAILED
        return None
    cli = fake(replies, prompt='master> ', first_prompt='master> ')
    with pytest.raises(hm.HAProxyReloadError, match='reload failed'):
        hm.MasterClient(cli.path, timeout=2).reload(timeout=2, poll=0.01)


def test_master_reload_that_never_happens_times_out(fake):
    cli = fake(lambda line: PROC_BEFORE if line == 'show proc' else None, prompt='master> ', first_prompt='master> ')
    with pytest.raises(hm.HAProxyReloadError, match='no new worker within'):
        hm.MasterClient(cli.path, timeout=1).reload(timeout=0.3, poll=0.05)


def test_validate_config(tmp_path):
    good = tmp_path / 'good.cfg'
    good.write_text('defaults\n  mode http\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\n'
                    'frontend f\n  bind 127.0.0.1:1\n  default_backend b\nbackend b\n  server s 127.0.0.1:1\n')
    bad = tmp_path / 'bad.cfg'
    bad.write_text(good.read_text() + '  bogus_directive here\n')
    if not any(os.access(os.path.join(d, 'haproxy'), os.X_OK) for d in os.environ.get('PATH', '').split(os.pathsep) + ['/usr/sbin']):
        pytest.skip('haproxy not installed')
    hm.validate_config(str(good), haproxy_bin='/usr/sbin/haproxy')
    with pytest.raises(hm.ConfigInvalid, match='bogus_directive'):
        hm.validate_config(str(bad), haproxy_bin='/usr/sbin/haproxy')
