"""The type vocabulary: column-type grammar, exact comparisons, capacity (no server)."""
import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_types import capacity_problem, parse_type, same_value


@pytest.mark.parametrize('text, rendered', [
    ('int', 'INT'), ('INTEGER', 'INT'), ('int unsigned', 'INT UNSIGNED'), ('BIGINT(20) UNSIGNED', 'BIGINT(20) UNSIGNED'),
    ('tinyint', 'TINYINT'), ('decimal(10,2)', 'DECIMAL(10,2)'), ('DECIMAL', 'DECIMAL(10,0)'), ('decimal(5)', 'DECIMAL(5,0)'),
    ('float', 'FLOAT'), ('double', 'DOUBLE'), ('char(2)', 'CHAR(2)'), ('char', 'CHAR(1)'), ('varchar(255)', 'VARCHAR(255)'),
    ('Text', 'TEXT'), ('mediumtext', 'MEDIUMTEXT'), ('longblob', 'LONGBLOB'), ('date', 'DATE'), ('time', 'TIME'),
    ('datetime', 'DATETIME'), ('datetime(6)', 'DATETIME(6)'), ('timestamp(3)', 'TIMESTAMP(3)'), ('boolean', 'BOOLEAN'),
    ('bool', 'BOOLEAN'), ('json', 'JSON'), ("enum('a','b')", "ENUM('a', 'b')"), ("ENUM( 'it''s' , 'x y' )", "ENUM('it''s', 'x y')"),
])
def test_type_grammar(text, rendered):
    assert parse_type(text).sql() == rendered


@pytest.mark.parametrize('text', [
    'VARCHAR', 'VARCHAR(0)', 'VARCHAR(70000)', 'CHAR(256)', 'DECIMAL(66,2)', 'DECIMAL(5,6)', 'DECIMAL(10,2) UNSIGNED', 'FLOAT(7)',
    'DATETIME(7)', 'TEXT(10)', 'INT(10,2)', 'INT ZEROFILL', 'VARCHAR(10) UNSIGNED', 'INT UNSIGNED UNSIGNED', 'GEOMETRY', 'SET(\'a\')',
    "ENUM()", "ENUM('a'", "ENUM('a') x", "ENUM('a','A')", "ENUM('a\\\\')", "ENUM(a)", 'VARCHAR(10) CHARACTER SET latin1',
    'INT; DROP TABLE users', 'INT -- x', 'VARCHAR(10)/*x*/', '', '   ', 'INT,', 'JSON()', 'BOOLEAN(1)'])
def test_type_grammar_rejects(text):
    with pytest.raises(SpecError) as err:
        parse_type(text, 'expand[0].create_table.columns[2].type')
    assert err.value.field == 'expand[0].create_table.columns[2].type'


def test_same_value_compares_strings_as_utf8mb4_bytes():
    assert same_value('a', 'b', 'string') == 'CAST(CONVERT(a USING utf8mb4) AS BINARY) <=> CAST(CONVERT(b USING utf8mb4) AS BINARY)'
    assert same_value('a', 'b', 'other') == 'a <=> b'


def _col(column_type, length=None, charset=None, precision=None, scale=None, fsp=None):
    data_type = column_type.split('(')[0].split()[0]
    return dict(type=data_type, column_type=column_type, length=length, charset=charset, precision=precision, scale=scale, fsp=fsp)


@pytest.mark.parametrize('src,dst,fits', [
    (_col('int(11)'), _col('bigint(20)'), True),
    (_col('bigint(20)'), _col('int(11)'), False),
    (_col('int(10) unsigned'), _col('int(11)'), False),
    (_col('int(10) unsigned'), _col('bigint(20)'), True),
    (_col('smallint(6)'), _col('mediumint(8) unsigned'), False),
    (_col('varchar(100)', 100, 'utf8mb4'), _col('varchar(100)', 100, 'utf8mb4'), True),
    (_col('varchar(100)', 100, 'utf8mb4'), _col('varchar(99)', 99, 'utf8mb4'), False),
    (_col('varchar(100)', 100, 'latin1'), _col('text', 65535, 'utf8mb4'), True),
    (_col('varchar(100)', 100, 'utf8mb4'), _col('varchar(100)', 100, 'latin1'), False),
    (_col('decimal(10,2)', precision=10, scale=2), _col('decimal(12,4)', precision=12, scale=4), True),
    (_col('decimal(10,2)', precision=10, scale=2), _col('decimal(10,4)', precision=10, scale=4), False),
    (_col('double'), _col('float'), False),
    (_col('float'), _col('double'), True),
    (_col("enum('a','b')"), _col("enum('a','b')"), True),
    (_col("enum('a','b')"), _col("enum('a')"), False),
    (_col('datetime(3)', fsp=3), _col('datetime(6)', fsp=6), True),
    (_col('datetime(6)', fsp=6), _col('datetime', fsp=0), False),
    (_col('varchar(10)', 10, 'utf8mb4'), _col('int(11)'), False),
    (_col('varbinary(16)', 16), _col('varbinary(32)', 32), True),
])
def test_capacity_problem(src, dst, fits):
    assert (capacity_problem(src, dst) is None) is fits, capacity_problem(src, dst)
