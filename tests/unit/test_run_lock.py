"""The run lock kept in a file (the database variant is tested against MariaDB in tests/integration)."""
import json
import os

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils.run_lock import FileLock, LockHeld, LockLost


class Clock(object):
    def __init__(self, now=1000000.0):
        self.now = now

    def __call__(self):
        return self.now


def lock(tmp_path, clock):
    return FileLock(str(tmp_path / 'sub' / 'run.lock'), 'zdt.bluegreen', clock=clock)


def test_acquire_heartbeat_release(tmp_path):
    clock = Clock()
    first = lock(tmp_path, clock)
    assert first.acquire('t1', 'alice@ctl:42', 'upgrade.yml', 600) == {'changed': True, 'took_over': None}
    assert first.acquire('t1', 'alice@ctl:42', 'upgrade.yml', 600)['changed'] is False   # the same run again
    clock.now += 300
    with pytest.raises(LockHeld) as err:
        lock(tmp_path, clock).acquire('t2', 'AWX job 17', 'rollback.yml', 600)
    assert 'alice@ctl:42 (upgrade.yml)' in str(err.value) and 'last heartbeat 300s ago' in str(err.value)
    first.heartbeat('t1')
    assert lock(tmp_path, clock).peek(600)['heartbeat_age'] == 0
    assert first.release('t1')['changed'] is True
    assert lock(tmp_path, clock).peek(600) is None
    assert first.release('t1')['changed'] is False


def test_a_stale_lock_is_taken_over_and_its_old_holder_finds_out(tmp_path):
    clock = Clock()
    dead = lock(tmp_path, clock)
    dead.acquire('t1', 'alice@ctl:42', 'upgrade.yml', 600)
    clock.now += 601
    result = lock(tmp_path, clock).acquire('t2', 'AWX job 17', 'rollback.yml', 600)
    assert result['changed'] and result['took_over']['holder'] == 'alice@ctl:42 (upgrade.yml)'
    assert result['took_over']['heartbeat_age'] == 601
    with pytest.raises(LockLost):
        dead.heartbeat('t1')
    assert dead.release('t1')['changed'] is False   # never releases another run's lock
    with open(str(tmp_path / 'sub' / 'run.lock'), encoding='utf-8') as handle:
        assert json.load(handle)['token'] == 't2'


def test_a_garbled_file_counts_as_free(tmp_path):
    os.makedirs(str(tmp_path / 'sub'))
    (tmp_path / 'sub' / 'run.lock').write_text('{not json', encoding='utf-8')
    assert lock(tmp_path, Clock()).acquire('t1', 'x', '', 600)['changed'] is True
