"""The cross-table race tests on a server with innodb_autoinc_lock_mode=2 (MySQL 8's default, Galera's requirement).

Under lock mode 2 no insert takes InnoDB's table-level AUTO-INC lock: ids come from the counter one reservation at
a time, interleaved with every other insert's, while the triggers' upserts (each one generates an id, even when it
finds its row and updates it) generate theirs. An id handed out twice would make an upsert update another user's
row without a warning, so these tests compare both shapes with an exact model of every acknowledged write.

Measured on MariaDB 10.11 (docs/measurements.md): the ``select`` copy (a locking ``INSERT … SELECT … ON DUPLICATE
KEY UPDATE``) does exactly that here when it meets rows the triggers wrote. So under lock mode 2 the module copies
with the ``insert`` strategy (a plain ``INSERT … SELECT`` of the rows the new table does not hold yet: it never
meets an existing row, and a row a trigger writes meanwhile fails the slice, which runs again), and with ``values``
when the new table held rows before the triggers existed (then every row must be compared). Both are held to
exactness here.
"""
import pytest

from zdt_lab.sync_races import cross_differences, cross_race, execute

from ansible_collections.zdt.bluegreen.plugins.module_utils.migration_spec import parse_migration
from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_runner import sync_present


@pytest.fixture(scope='module')
def server(sandbox_factory):
    yield from sandbox_factory('zdt-it-lm2-', options={'innodb-autoinc-lock-mode': 2})


@pytest.fixture
def db2(server, database_factory):
    yield from database_factory(server.mariadb)


def sync(conn, database, migration, **args):
    return sync_present(conn, database, parse_migration(migration), **args)


def test_the_server_runs_lock_mode_2(db2):
    assert execute(db2.connect(), 'SELECT @@GLOBAL.innodb_autoinc_lock_mode') == ((2,),)


@pytest.mark.parametrize('run', range(5))
def test_insert_copy_is_exact_under_concurrent_writes(db2, run):
    """The module's path: forward triggers, the backfill, backward triggers and verify in one call, old-shape writers
    racing all of it, the new shape written after it."""
    result, model, ops = cross_race(db2, sync, autoinc=True, seed=200 + run, module_path=True)
    assert result['entries'][0]['backfill']['strategy'] == 'insert'
    assert result['backfill']['chunks'] >= 10 and result['verify']['mismatches'] == 0
    assert ops > 500
    assert cross_differences(db2.connect(), model) == {}


@pytest.mark.parametrize('run', range(3))
def test_insert_copy_meets_trigger_upserts_and_their_generated_ids(db2, run):
    """Dense: 2,000 users, 4 writers, 20-row chunks. Most writes are updates whose trigger upserts a row of the range
    being copied (generating an id), and an update to all-NULL followed by one to a value deletes the new row and
    inserts it again with a fresh id: the copy keeps meeting rows the triggers have just written."""
    result, model, ops = cross_race(db2, sync, autoinc=True, seed=300 + run, rows=2000, slots=4, module_path=True,
                                    chunk_size=20, chunk_time=0.002)
    assert result['entries'][0]['backfill']['strategy'] == 'insert' and result['verify']['mismatches'] == 0
    assert ops > 300
    assert cross_differences(db2.connect(), model) == {}


@pytest.mark.parametrize('run', range(3))
def test_values_copy_is_exact_when_the_new_table_already_held_rows(db2, run):
    """Two steps: the forward triggers first, writers (also through the new shape, once the backward triggers exist)
    fill the new table, then the backfill: it must compare every row, and copies with ``values``."""
    result, model, ops = cross_race(db2, sync, autoinc=True, seed=250 + run)
    assert result['entries'][0]['backfill']['strategy'] == 'values' and result['verify']['mismatches'] == 0
    assert ops > 500
    assert cross_differences(db2.connect(), model) == {}
