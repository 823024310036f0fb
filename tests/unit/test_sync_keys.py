"""Key ranges and checkpoint keys (no server)."""
from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_keys


def test_range_condition():
    assert sync_keys.range_condition('`id`', None, None) == ('1 = 1', [])
    assert sync_keys.range_condition('`id`', 5, None) == ('`id` > %s', [5])
    assert sync_keys.range_condition('`id`', 5, 10) == ('`id` > %s AND `id` <= %s', [5, 10])


def test_checkpoint_keys_round_trip_exactly():
    for key in (1, 2 ** 63 - 1, 'abc', 'ü', b'\x00\xff'):
        assert sync_keys.decode_key(sync_keys.encode_key(key)) == key
    assert sync_keys.encode_key(None) is None
