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


def test_composite_range_condition_is_written_out_for_the_index():
    key = ('`a`', '`b`')
    assert sync_keys.range_condition(key, (1, 2), None) == ('((`a` > %s) OR (`a` = %s AND `b` > %s))', [1, 1, 2])
    assert sync_keys.range_condition(key, None, (3, 4)) == ('((`a` < %s) OR (`a` = %s AND `b` <= %s))', [3, 3, 4])
    cond, args = sync_keys.range_condition(('`a`', '`b`', '`c`'), (1, 2, 3), None)
    assert cond == '((`a` > %s) OR (`a` = %s AND `b` > %s) OR (`a` = %s AND `b` = %s AND `c` > %s))'
    assert args == [1, 1, 2, 1, 2, 3]
    assert sync_keys.key_equals(('t.`a`', 't.`b`'), ('NEW.`x`', 'NEW.`y`')) == 't.`a` = NEW.`x` AND t.`b` = NEW.`y`'
    assert sync_keys.key_value((7, 8, 'h'), key) == (7, 8) and sync_keys.key_value((7, 'h'), '`a`') == 7


def test_composite_checkpoint_keys_round_trip_exactly():
    for key in ((1, 'x'), (2 ** 63 - 1, b'\x00'), ('ü', 5)):
        assert sync_keys.decode_key(sync_keys.encode_key(key)) == key
