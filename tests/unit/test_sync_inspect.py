"""Telling our live sync triggers from anybody else's, and plans without the live schema (no server)."""
import os

import yaml

from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_inspect
from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_inspect import is_ours, owned_live_triggers


def test_is_ours_requires_label_table_and_event(cross_plan):
    t = cross_plan().triggers()[0]
    live = dict(table=t.table, timing=t.timing, event=t.event, body=t.body)
    assert is_ours(live, t)
    assert not is_ours(dict(live, body='BEGIN SET @x = 1; END'), t)
    assert not is_ours(dict(live, table='other'), t)


def test_owned_live_triggers_matches_only_our_pattern_and_label(monkeypatch, cross_plan):
    plan = cross_plan()
    live = dict((t.name, dict(table=t.table, timing=t.timing, event=t.event, body=t.body)) for t in plan.triggers())
    live['zdt_m2_s0_fwd_ins'] = dict(live['zdt_m2_s0_fwd_ins'])
    live['zdt_users_audit'] = dict(table='users', timing='AFTER', event='INSERT', body='zdt_sync: BEGIN END')
    live['zdt_m22_s0_fwd_ins'] = dict(live['zdt_m2_s0_fwd_ins'])
    live['zdt_m2_s0_bwd_del'] = dict(live['zdt_m2_s0_bwd_del'], body='BEGIN END')   # same name, not ours
    monkeypatch.setattr(sync_inspect, 'existing_triggers', lambda conn, db: live)
    names = [t.name for t in owned_live_triggers(None, 'db', 2)]
    assert sorted(names) == ['zdt_m2_s0_bwd_ins', 'zdt_m2_s0_bwd_upd', 'zdt_m2_s0_fwd_del', 'zdt_m2_s0_fwd_ins', 'zdt_m2_s0_fwd_upd']
    assert names[:3] == ['zdt_m2_s0_bwd_ins', 'zdt_m2_s0_bwd_upd', 'zdt_m2_s0_fwd_ins']


def test_the_plan_before_the_expand_counts_the_cascade_the_expand_creates():
    """Check mode before the expand: the sample's addresses table does not exist yet, but its create_table has
    user_id -> users(id) ON DELETE CASCADE, so the plan names the 5 triggers the real run creates, not 6."""
    path = os.path.join(os.path.dirname(__file__), '..', '..', 'sample', 'migrations', '002_addresses.yml')
    migration = parse_migration(path)
    names = [t.name for t in sync_inspect.unchecked_plan(migration, migration.sync[0]).triggers()]
    assert 'zdt_m2_s0_fwd_del' not in names and len(names) == 5
    data = yaml.safe_load(open(path, encoding='utf-8'))
    data['expand'][0]['create_table']['foreign_keys'][0]['on_delete'] = 'RESTRICT'
    migration = parse_migration(data)
    assert 'zdt_m2_s0_fwd_del' in [t.name for t in sync_inspect.unchecked_plan(migration, migration.sync[0]).triggers()]
