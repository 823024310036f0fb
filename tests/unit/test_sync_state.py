"""Backfill progress from a checkpoint row (no server)."""
from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_state


def test_progress_rate_and_eta():
    import datetime
    t0 = datetime.datetime(2024, 1, 1, 0, 0, 0)
    row = dict(state='running', rows_total=1000, rows_done=400, run_rows=400, run_started_at=t0,
               updated_at=t0 + datetime.timedelta(seconds=2))
    assert sync_state.progress(row) == dict(state='running', rows_done=400, rows_total=1000, rows_per_second=200.0, eta_seconds=3.0)
    assert sync_state.progress(None)['state'] == 'not_started'
    row.update(state='done', rows_done=1000)
    assert sync_state.progress(row)['eta_seconds'] == 0
