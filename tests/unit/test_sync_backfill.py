"""The backfill's SQL choices, warning checks and throttle (no server)."""
import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils import sync_backfill as bf
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError


def test_strategy_choice(cross_plan, same_plan):
    assert bf.choose_strategy(cross_plan()) == 'values'
    assert bf.choose_strategy(cross_plan(autoinc=None)) == 'select'
    assert bf.choose_strategy(cross_plan(types=('double', 'varchar'))) == 'select'
    assert bf.choose_strategy(same_plan()) == 'update'


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


class _StatusConn(object):
    """Answers SHOW GLOBAL STATUS LIKE 'Threads_running' with the next of ``values``."""

    def __init__(self, values):
        self.values = list(values)
        self.queries = 0

    def cursor(self):
        conn = self

        class Cursor(object):
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def execute(self, sql, args=None):
                assert sql == "SHOW GLOBAL STATUS LIKE 'Threads_running'"
                conn.queries += 1

            def fetchone(self):
                return ('Threads_running', str(conn.values.pop(0)))
        return Cursor()


def test_backfill_pauses_while_threads_running_is_above_the_limit(cross_plan):
    slept = []
    runner = bf.Backfill(_StatusConn([40, 26, 25]), 'app', cross_plan(), max_threads_running=25, sleep=slept.append)
    runner.throttle()
    assert slept == [0.25, 0.25] and runner.throttled_seconds == 0.5


def test_throttling_off_with_zero(cross_plan):
    conn = _StatusConn([])
    bf.Backfill(conn, 'app', cross_plan(), max_threads_running=0).throttle()
    assert conn.queries == 0
