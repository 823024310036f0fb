"""Backfill progress from a checkpoint row (no server)."""
from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_state


def test_progress_rate_and_eta():
    import datetime
    t0 = datetime.datetime(2024, 1, 1, 0, 0, 0)
    row = dict(state='running', rows_total=1000, rows_done=400, run_rows=400, run_started_at=t0,
               updated_at=t0 + datetime.timedelta(seconds=2))
    assert sync_state.progress(row) == dict(state='running', rows_done=400, rows_total=1000, rows_per_second=200.0, eta_seconds=3.0,
                                            paused=False, pause_reason=None)
    assert sync_state.progress(None)['state'] == 'not_started'
    row.update(state='done', rows_done=1000)
    assert sync_state.progress(row)['eta_seconds'] == 0


def test_progress_line():
    entries = [{'index': 0, 'backfill': dict(state='running', rows_done=420000, rows_total=1000000, rows_per_second=210000.4,
                                             eta_seconds=2.8)},
               {'index': 1, 'backfill': dict(state='not_started', rows_done=0, rows_total=None, rows_per_second=None,
                                             eta_seconds=None, paused=True, pause_reason='replica lag 3.2 s > 1.5 s')}]
    assert sync_state.describe_progress(2, entries) == (
        'migration 2 backfill: sync[0] running: 420000/1000000 rows (42 %), 210000 rows/s, ETA 2.8s; '
        'sync[1] not_started: 0/? rows, paused: replica lag 3.2 s > 1.5 s')


def test_progress_reports_a_pause_only_while_the_copy_runs():
    row = dict(state='running', rows_total=10, rows_done=4, run_rows=4, run_started_at=None, updated_at=None, paused=1,
               pause_reason='replica db2:3306 lags 2.0 s, more than max_replica_lag=1.5')
    assert sync_state.progress(row)['paused'] is True and 'db2:3306' in sync_state.progress(row)['pause_reason']
    row.update(state='done')
    assert sync_state.progress(row)['paused'] is False


def test_heartbeat_values_are_microseconds_of_the_modules_clock():
    assert sync_state.beat_value(1700000000.1234567) == 1700000000123457
    assert sync_state.beat_seconds(1700000000123457) == 1700000000.123457
    assert sync_state.beat_seconds(None) is None
