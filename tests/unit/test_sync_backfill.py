"""The backfill's SQL choices and warning checks (no server); what pauses it: test_sync_throttle.py."""
import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_backfill as bf
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError


def test_strategy_choice(cross_plan, same_plan):
    assert bf.choose_strategy(cross_plan()) == 'values'
    assert bf.choose_strategy(cross_plan(autoinc=None)) == 'select'
    assert bf.choose_strategy(cross_plan(types=('double', 'varchar'))) == 'select'
    assert bf.choose_strategy(same_plan()) == 'update'
    # innodb_autoinc_lock_mode=2: a plain INSERT ... SELECT of the missing rows, unless every row must be compared
    assert bf.choose_strategy(cross_plan(), autoinc_lock_mode=2) == 'insert'
    assert bf.choose_strategy(cross_plan(types=('double', 'varchar')), autoinc_lock_mode=2) == 'insert'
    assert bf.choose_strategy(cross_plan(), autoinc_lock_mode=2, cleanup=True) == 'values'
    assert bf.choose_strategy(cross_plan(autoinc=None), autoinc_lock_mode=2) == 'select'
    assert bf.choose_strategy(cross_plan(), autoinc_lock_mode=0) == 'values'


def test_a_forced_strategy_and_the_slice_length_that_goes_with_it(cross_plan):
    runner = bf.Backfill(None, 'app', cross_plan(), strategy='select')
    runner.choose(2, False)
    assert (runner.strategy, runner.slice_time) == ('select', bf.SELECT_SLICE_TIME)
    runner = bf.Backfill(None, 'app', cross_plan())
    runner.choose(2, False)
    assert (runner.strategy, runner.slice_time) == ('insert', bf.SLICE_TIME)


def test_literal_expressions_are_exact_per_type():
    assert bf.literal_expr('`c`', 'varchar') == "IF(`c` IS NULL, 'NULL', CONCAT('_utf8mb4', QUOTE(CONVERT(`c` USING utf8mb4))))"
    assert bf.literal_expr('`c`', 'blob') == "IF(`c` IS NULL, 'NULL', CONCAT('X''', HEX(`c`), ''''))"
    assert bf.literal_expr('`c`', 'int') == "IFNULL(CAST(`c` AS CHAR), 'NULL')"
    assert bf.literal_expr('`c`', 'datetime') == "IFNULL(QUOTE(`c`), 'NULL')"


class _WarningCursor(object):
    """Just enough of a PyMySQL cursor for Backfill._check_warnings."""

    def __init__(self, warnings):
        self.warnings = warnings
        self._result = type('Result', (), {'warning_count': len(warnings)})()

    def execute(self, sql, args=None):
        assert sql == 'SHOW WARNINGS'

    def fetchall(self):
        return self.warnings


def _backfill(plan):
    return bf.Backfill(None, 'app', plan)


def test_deprecation_notes_do_not_fail_a_chunk(cross_plan):
    _backfill(cross_plan())._check_warnings(_WarningCursor([('Warning', 1287, "'VALUES function' is deprecated")]), 'copying a chunk')


def test_any_other_warning_fails_the_chunk_naming_it(cross_plan):
    with pytest.raises(DatabaseError, match='1265'):
        _backfill(cross_plan())._check_warnings(_WarningCursor([('Warning', 1287, 'deprecated'), ('Warning', 1265, 'Data truncated')]), 'copying')
