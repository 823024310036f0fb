# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs ``mysql_trigger_sync`` (present, absent) and ``mysql_sync_info`` (no Ansible import).

present: validate every entry against the live schema and check the server (sync_preflight) and
the replicas -> take the per-migration lock -> create the missing forward / same-table triggers
(short lock_wait_timeout, retries) -> backfill (resuming a checkpoint when those triggers were
already there; paused by sync_throttle) -> create the missing backward triggers -> verify -> verify
each replica against the primary (when asked).  absent: drop exactly our triggers (name pattern
*and* our body label), then our checkpoint rows.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.zdt.bluegreen.plugins.module_utils import mysql_inspect, mysql_lock
from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_state
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import SpecError, ZdtError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_ddl import run_all
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_backfill import Backfill, rows_total_estimate, target_has_rows
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_inspect import (
    classify, existing_triggers, inspect_all, inspect_sync, is_ours, made_by_expand, owned_live_triggers, unchecked_plan)
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_preflight import check_replicas, check_server
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_replica_verify import ReplicaVerifier
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_throttle import Throttler
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_verify import SyncMismatch, Verifier


def _empty_backfill():
    return dict(rows_copied=0, rows_total=0, chunks=0, seconds=0.0, rows_per_second=0.0, resumed_from=None, throttled_seconds=0.0,
                max_replica_lag_seen=None)


def _sum_backfill(results):
    total = _empty_backfill()
    for r in results:
        for k in ('rows_copied', 'rows_total', 'chunks'):
            total[k] += int(r.get(k) or 0)
        total['seconds'] = round(total['seconds'] + float(r.get('seconds') or 0), 3)
        if total['resumed_from'] is None and r.get('resumed_from') is not None:
            total['resumed_from'] = r['resumed_from']
    copied_rate = [float(r.get('rows_per_second') or 0) for r in results]
    total['rows_per_second'] = round(total['rows_total'] / total['seconds'], 1) if total['seconds'] > 0 else (max(copied_rate) if copied_rate else 0.0)
    total['max_chunk_seconds'] = max([float(r.get('max_chunk_seconds') or 0) for r in results] or [0.0])
    total['throttled_seconds'] = round(sum(float(r.get('throttled_seconds') or 0) for r in results), 2)
    lags = [r['max_replica_lag_seen'] for r in results if r.get('max_replica_lag_seen') is not None]
    total['max_replica_lag_seen'] = max(lags) if lags else None
    return total


def _is_backward(trigger):
    return '_bwd_' in trigger.name


def lock_name(db, migration_id):
    """One backfill per migration at a time: GET_LOCK name ``zdt_backfill_<db>_<id>``."""
    return mysql_lock.lock_name('zdt_backfill_', db, '_%d' % int(migration_id))


def _acquire(conn, db, migration, lock_wait_timeout, ddl_retries):
    return mysql_lock.acquire(conn, lock_name(db, migration.id), lock_timeout(lock_wait_timeout, ddl_retries),
                              'another run of migration %d is in progress' % int(migration.id))


def _ddl(conn, db, triggers, sql_of, lock_wait_timeout, ddl_retries):
    """Create or drop ``triggers`` one by one with the collection's DDL runner."""
    statements = []
    for trigger in triggers:
        sql = sql_of(trigger)
        statements.append((sql, sql.split(' FOR EACH ROW')[0], (trigger.table,)))
    run_all(conn, statements, lock_wait_timeout=lock_wait_timeout, retries=ddl_retries, database=db)


def lock_timeout(lock_wait_timeout, ddl_retries):
    """How long a second run waits for the per-migration lock before failing."""
    return max(1, int(lock_wait_timeout) * max(1, int(ddl_retries)))


def _check_mode_plans(conn, db, migration):
    """Each entry's plan for check mode, and the entries that wait for the expand (their tables or columns do not
    exist yet because this migration's expand, not run in check mode, creates them)."""
    plans, after_expand = [], []
    for spec in migration.sync:
        try:
            plans.append(inspect_sync(conn, db, migration.id, spec))
        except SpecError:
            if not made_by_expand(migration, spec):
                raise
            plans.append(unchecked_plan(migration, spec))
            after_expand.append(spec.index)
    return plans, after_expand


def sync_present(conn, db, migration, backfill=True, verify=True, chunk_time=0.5, chunk_size=1000, max_threads_running=25,
                 lock_wait_timeout=1, ddl_retries=10, check_mode=False, strategy=None, replicas=(), max_replica_lag=1.5,
                 replica_timeout=60, verify_replicas=False, sleep=time.sleep, clock=time.time):
    """``replicas``: mysql_replicas.Replica objects; the copy pauses while one lags more than ``max_replica_lag`` seconds
    or cannot be reached (for at most ``replica_timeout`` seconds), and ``verify_replicas`` compares each with the primary."""
    after_expand = []
    if check_mode:
        plans, after_expand = _check_mode_plans(conn, db, migration)
    else:
        plans = inspect_all(conn, db, migration)
    all_names = [t.name for p in plans for t in p.triggers()]
    present, missing = classify(conn, db, plans)
    if verify_replicas and not replicas:
        raise SpecError('verify_replicas', 'needs at least one entry in replicas')
    if verify_replicas and not backfill:
        lacking = [p.field for p in plans if sync_state.read(conn, db, p.migration_id, p.index) is None]
        if lacking:
            raise SpecError('verify_replicas', 'needs the backfill checkpoint of %s (replicas are compared once they have '
                                               'reached its heartbeat): run with backfill=true' % ', '.join(lacking))
    check_server(conn, creates_triggers=bool(missing))
    check_replicas(conn, replicas, replica_timeout, sleep=sleep, clock=clock)
    result = dict(changed=False, triggers=all_names, created=[m.name for m in missing], backfill=_empty_backfill(),
                  verify=dict(rows_checked=0, mismatches=0), entries=[])
    result['diff'] = dict(before=dict(triggers=sorted(t.name for t in present)), after=dict(triggers=sorted(all_names)))
    if check_mode:
        totals = []
        pending = False
        for plan in plans:
            row = sync_state.read(conn, db, plan.migration_id, plan.index)
            created_here = any(t.name in result['created'] for t in plan.triggers())
            if row is not None and not created_here:
                totals.append(int(row['rows_total']))
                pending = pending or (backfill and row['state'] != 'done')
            else:
                source_exists = not (plan.index in after_expand and not mysql_inspect.table_exists(conn, db, plan.from_table))
                totals.append(rows_total_estimate(conn, plan) if source_exists else 0)
                pending = pending or bool(backfill)
        result['after_expand'] = after_expand
        result['backfill']['rows_total'] = sum(totals)
        result['changed'] = bool(missing) or pending
        return result
    name = _acquire(conn, db, migration, lock_wait_timeout, ddl_retries)
    try:
        # classify again under the lock: another run may have created them meanwhile
        present, missing = classify(conn, db, plans)
        result['created'] = [m.name for m in missing]
        missing_names = set(result['created'])
        # Whether each new table already held rows is read before its triggers exist: afterwards the
        # application's writes through them would count too, and make every slice clean up for nothing.
        had_rows = dict((p.index, target_has_rows(conn, p)) for p in plans
                        if any(t.name in missing_names and not _is_backward(t) for t in p.triggers()))
        # Forward (and same-table) triggers first: the copy is exact only with them in place.  Backward
        # triggers (new -> old) are created after the backfill: nothing writes the new shape before this
        # module has finished, and a backward trigger on the copy's target would fire for every copied row.
        _ddl(conn, db, [t for p in plans for t in p.triggers() if t.name in missing_names and not _is_backward(t)],
             lambda t: t.create_sql(), lock_wait_timeout, ddl_retries)
        changed = bool(missing)
        backfills = []
        for plan in plans:
            entry = dict(index=plan.index, kind=plan.kind, triggers=[t.name for t in plan.triggers()])
            created_here = any(t.name in missing_names and not _is_backward(t) for t in plan.triggers())
            if backfill:
                before = sync_state.read(conn, db, plan.migration_id, plan.index)
                throttler = Throttler(conn, plan.migration_id, plan.index, max_threads_running=max_threads_running, replicas=replicas,
                                      max_replica_lag=max_replica_lag, replica_timeout=replica_timeout, sleep=sleep, clock=clock)
                runner = Backfill(conn, db, plan, chunk_time=chunk_time, chunk_size=chunk_size, strategy=strategy, throttler=throttler,
                                  sleep=sleep, clock=clock)
                res = runner.run(fresh=created_here, target_had_rows=had_rows.get(plan.index))
                if created_here or before is None or before['state'] != 'done':
                    changed = True
                entry['backfill'] = res
                backfills.append(res)
            result['entries'].append(entry)
        _ddl(conn, db, [t for p in plans for t in p.triggers() if t.name in missing_names and _is_backward(t)],
             lambda t: t.create_sql(), lock_wait_timeout, ddl_retries)
        if backfills:
            result['backfill'] = _sum_backfill(backfills)
        result['changed'] = changed
        if verify:
            checked, mism = 0, 0
            for plan, entry in zip(plans, result['entries']):
                res = Verifier(conn, plan).run()   # raises SyncMismatch
                entry['verify'] = res
                checked += res['rows_checked']
                mism += res['mismatches']
            result['verify'] = dict(rows_checked=checked, mismatches=mism)
        if verify_replicas:
            result['verify_replicas'] = _verify_replicas(conn, db, plans, replicas, replica_timeout, sleep, clock)
    finally:
        mysql_lock.release(conn, name)
    return result


def _verify_replicas(conn, db, plans, replicas, replica_timeout, sleep, clock):
    """Each replica's checksums of every entry's mapped columns against the primary's; SyncMismatch names the differences."""
    results = []
    for replica in replicas:
        total = dict(replica=replica.label, rows_checked=0, mismatches=0, keys=[], unverified=0, unverified_keys=[])
        for plan in plans:
            res = ReplicaVerifier(conn, db, replica, plan, replica_timeout=replica_timeout, sleep=sleep, clock=clock).run()
            for k in ('rows_checked', 'mismatches', 'unverified'):
                total[k] += res[k]
            total['keys'].extend(res['keys'][:10 - len(total['keys'])])
            total['unverified_keys'].extend(res['unverified_keys'][:10 - len(total['unverified_keys'])])
        results.append(total)
    bad = ['replica %s differs from the primary in %d row(s); first keys: %s' % (r['replica'], r['mismatches'], ', '.join(repr(k) for k in r['keys']))
           for r in results if r['mismatches']]
    if bad:
        raise SyncMismatch('verify_replicas: %s' % '; '.join(bad), dict(replicas=results))
    return results


def sync_absent(conn, db, migration, lock_wait_timeout=1, ddl_retries=10, check_mode=False):
    owned = owned_live_triggers(conn, db, migration.id)
    names = [t.name for t in owned]
    has_state = sync_state.read_any(conn, db, migration.id)
    result = dict(changed=bool(owned) or has_state, triggers=names,
                  diff=dict(before=dict(triggers=sorted(names)), after=dict(triggers=[])))
    if check_mode or not result['changed']:
        return result
    name = _acquire(conn, db, migration, lock_wait_timeout, ddl_retries)
    try:
        owned = owned_live_triggers(conn, db, migration.id)
        _ddl(conn, db, owned, lambda t: t.drop_sql(), lock_wait_timeout, ddl_retries)
        sync_state.delete(conn, db, migration.id)
    finally:
        mysql_lock.release(conn, name)
    return result


def sync_info(conn, db, migration):
    """Read-only: per entry whether its triggers exist and the backfill progress."""
    live = existing_triggers(conn, db)
    running = mysql_lock.in_use(conn, lock_name(db, migration.id))
    entries = []
    for spec in migration.sync:
        try:
            plan = inspect_sync(conn, db, migration.id, spec)
        except ZdtError:
            plan = unchecked_plan(migration, spec)   # tables or columns gone: the trigger names do not depend on types
        names = [t.name for t in plan.triggers()]
        found = [t.name for t in plan.triggers() if t.name in live and is_ours(live[t.name], t)]
        row = sync_state.read(conn, db, migration.id, spec.index)
        prog = sync_state.progress(row)
        if prog['state'] == 'running' and not running:
            prog['state'] = 'interrupted'
            prog['paused'] = False
        entries.append(dict(index=spec.index, kind=spec.kind, from_table=spec.from_table, to_table=spec.to_table,
                            direction=spec.direction, triggers=names, triggers_present=found,
                            triggers_exist=len(found) == len(names), backfill=prog))
    return entries
