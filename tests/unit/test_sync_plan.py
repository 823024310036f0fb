"""Trigger SQL of a sync entry (no server)."""
import os

import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import IdentifierError
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import SyncSpec, parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_plan import SyncPlan, guard_var, trigger_name


def test_trigger_names_are_deterministic_and_prefixed(cross_plan):
    names = [t.name for t in cross_plan().triggers()]
    assert names == ['zdt_m2_s0_fwd_del', 'zdt_m2_s0_fwd_upd', 'zdt_m2_s0_fwd_ins',
                     'zdt_m2_s0_bwd_del', 'zdt_m2_s0_bwd_upd', 'zdt_m2_s0_bwd_ins']
    assert [t.name for t in cross_plan('forward').triggers()] == names[:3]
    assert trigger_name(2 ** 63 - 1, 999, 'fwd', 'ins').startswith('zdt_') and len(trigger_name(2 ** 63 - 1, 999, 'fwd', 'ins')) <= 64


def test_cross_triggers_timing_tables_and_upsert(cross_plan):
    trig = dict((t.name, t) for t in cross_plan().triggers())
    ins = trig['zdt_m2_s0_fwd_ins']
    assert (ins.timing, ins.event, ins.table) == ('AFTER', 'INSERT', 'users')
    assert ('INSERT INTO `addresses` (`user_id`, `address_line_1`, `address_line_2`) VALUES (NEW.`id`, NEW.`address_line_1`, '
            'NEW.`address_line_2`) ON DUPLICATE KEY UPDATE `address_line_1` = NEW.`address_line_1`') in ins.body
    # the new table's own AUTO_INCREMENT key is never written by the triggers
    assert '`id`, `user_id`' not in ins.body
    upd = trig['zdt_m2_s0_fwd_upd'].body
    assert 'IF NEW.`address_line_1` IS NULL AND NEW.`address_line_2` IS NULL THEN' in upd
    assert 'DELETE FROM `addresses` WHERE `user_id` = NEW.`id`;' in upd
    assert 'DELETE FROM `addresses` WHERE `user_id` = OLD.`id`;' in trig['zdt_m2_s0_fwd_del'].body
    assert 'UPDATE `users` SET `address_line_1` = NULL, `address_line_2` = NULL WHERE `id` = OLD.`user_id`;' in trig['zdt_m2_s0_bwd_del'].body
    assert 'UPDATE `users` SET `address_line_1` = NEW.`address_line_1`' in trig['zdt_m2_s0_bwd_ins'].body
    assert trig['zdt_m2_s0_bwd_ins'].table == 'addresses'
    assert ins.create_sql().startswith('CREATE TRIGGER `zdt_m2_s0_fwd_ins` AFTER INSERT ON `users` FOR EACH ROW zdt_sync: BEGIN')
    assert trig['zdt_m2_s0_bwd_upd'].drop_sql() == 'DROP TRIGGER IF EXISTS `zdt_m2_s0_bwd_upd`'


def test_guard_is_statement_scoped_and_cleared_on_error(cross_plan):
    g = guard_var(2, 0)
    for t in cross_plan().triggers():
        body = t.body
        # cleared and re-raised on any error: a failing statement cannot leave sync disabled
        assert 'DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN SET %s = NULL; RESIGNAL; END;' % g in body
        # the guard value is the statement start: a stale value never matches a later statement
        assert 'IF @zdt_copy_m2_s0 IS NULL AND NOT (%s <=> NOW(6) + 0) THEN' % g in body
        assert body.index('SET %s = NOW(6) + 0;' % g) < body.rindex('SET %s = NULL;' % g)
        assert body.startswith('zdt_sync: BEGIN') and body.endswith('END')


def test_change_detection_is_binary_for_strings(cross_plan):
    upd = dict((t.name, t) for t in cross_plan().triggers())['zdt_m2_s0_fwd_upd'].body
    # OLD and NEW of one column share its character set: their bytes are compared (a case or trailing-space change is a change)
    assert 'NOT (CAST(OLD.`address_line_1` AS BINARY) <=> CAST(NEW.`address_line_1` AS BINARY))' in upd
    assert 'NOT (CAST(OLD.`address_line_2` AS BINARY) <=> CAST(NEW.`address_line_2` AS BINARY))' in upd


def test_same_table_triggers_are_before_triggers_setting_new(same_plan):
    trig = dict((t.name, t) for t in same_plan().triggers())
    assert sorted(trig) == ['zdt_m3_s1_same_ins', 'zdt_m3_s1_same_upd']
    ins, upd = trig['zdt_m3_s1_same_ins'], trig['zdt_m3_s1_same_upd']
    assert ins.timing == upd.timing == 'BEFORE'
    assert 'IF NEW.`new_name` IS NULL THEN\n    SET NEW.`new_name` = NEW.`old_name`;' in ins.body
    assert 'ELSEIF NEW.`old_name` IS NULL THEN\n    SET NEW.`old_name` = NEW.`new_name`;' in ins.body
    assert 'ELSEIF NOT (' in upd.body and 'SET NEW.`old_name` = NEW.`new_name`;' in upd.body
    # no other table is touched, so no guard is needed
    assert 'UPDATE ' not in upd.body and 'INSERT ' not in ins.body and '@zdt_sync' not in ins.body
    fwd = dict((t.name, t) for t in same_plan('forward').triggers())
    assert 'SET NEW.`new_name` = NEW.`old_name`;' in fwd['zdt_m3_s1_same_upd'].body
    assert 'SET NEW.`old_name`' not in fwd['zdt_m3_s1_same_upd'].body


@pytest.mark.parametrize('name', ['users`; DROP TABLE users; --', "a'b", 'a;b', 'a b', 'a-b', '', 'x' * 65])
def test_hostile_identifiers_are_rejected_before_sql_exists(name):
    spec = SyncSpec(0, name, 'id', ('c',), 'addresses', 'user_id', ('c',), 'both', 'cross')
    plan = SyncPlan(2, spec, ['int'], ['int'], 'int', target_autoinc='id')
    with pytest.raises(IdentifierError):
        plan.triggers()


def test_reserved_and_unicode_identifiers_are_quoted():
    spec = SyncSpec(0, 'select', 'order', ('straße',), 'adrèsses', 'from', ('größe',), 'both', 'cross')
    body = '\n'.join(t.create_sql() for t in SyncPlan(9, spec, ['varchar'], ['varchar'], 'int').triggers())
    assert 'ON `select` FOR EACH ROW' in body and 'INSERT INTO `adrèsses` (`from`, `größe`)' in body


def test_spec_from_the_seed_migration_file():
    mig = parse_migration(os.path.join(os.path.dirname(__file__), '..', '..', 'sample', 'migrations', '002_addresses.yml'))
    plan = SyncPlan(mig.id, mig.sync[0], ['varchar', 'varchar'], ['varchar', 'varchar'], 'int', target_autoinc='id')
    assert len(plan.triggers()) == 6 and plan.kind == 'cross'


def test_cascade_fk_replaces_the_forward_delete_trigger_and_update_is_the_upsert_alone():
    spec = SyncSpec(0, 'users', 'id', ('a',), 'addresses', 'user_id', ('a',), 'both', 'cross')
    plan = SyncPlan(2, spec, ['varchar'], ['varchar'], 'int', target_autoinc='id', cascade_delete=True)
    names = [t.name for t in plan.triggers()]
    assert 'zdt_m2_s0_fwd_del' not in names and len(names) == 5
    upd = dict((t.name, t) for t in plan.triggers())['zdt_m2_s0_fwd_upd'].body
    # no UPDATE of the new row before the upsert: it would gap-lock a missing row (see the integration test)
    assert 'UPDATE `addresses`' not in upd and 'ROW_COUNT()' not in upd
    assert upd.count('INSERT INTO `addresses` (`user_id`, `a`) VALUES (NEW.`id`, NEW.`a`) ON DUPLICATE KEY UPDATE `a` = NEW.`a`;') == 1
