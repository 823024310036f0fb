# -*- coding: utf-8 -*-
import pytest

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import IdentifierError, SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_quoting import (
    is_valid_identifier, quote_identifier, quote_qualified, validate_identifier)


@pytest.mark.parametrize('name', ['users', 'address_line_1', '_x', '$dollar', 'a$b', 'order', 'select', 'KEY', 'ключ', 'straße',
                                  'テーブル', 'x' * 64])
def test_accepts_and_quotes(name):
    assert quote_identifier(name) == '`%s`' % name


@pytest.mark.parametrize('name', ['a`b', '`', 'a"b', "a'b", 'a;b', 'x; DROP TABLE users', 'a b', 'a\tb', 'a\nb', 'trailing ', 'a.b',
                                  'a-b', 'a/*c*/', '--', '1abc', '123', '', 'x' * 65, 'a\x00b', 'é\u200b', '\U0001d400bc', 'emoji\U0001F600',
                                  'a\\b', 'a(b)', 'a,b', 'a=b', 'a%b', 'a@b', 'a#b'])
def test_rejects_hostile_or_invalid(name):
    with pytest.raises(IdentifierError):
        quote_identifier(name, 'expand[0].create_table.table')
    assert not is_valid_identifier(name)


@pytest.mark.parametrize('value', [None, 1, 1.5, True, ['a'], {'a': 1}, b'users'])
def test_rejects_non_strings(value):
    with pytest.raises(IdentifierError) as err:
        quote_identifier(value, 'sync[0].from.table')
    assert err.value.field == 'sync[0].from.table'


def test_error_names_field_and_is_spec_error():
    with pytest.raises(SpecError) as err:
        validate_identifier('a`b', 'expand[1].add_column.column.name')
    assert err.value.field == 'expand[1].add_column.column.name'
    assert str(err.value).startswith('expand[1].add_column.column.name: ')
    assert 'a`b' in str(err.value)


def test_quoted_result_never_contains_a_stray_backtick():
    for name in ['users', 'order', 'ключ', '$x']:
        q = quote_identifier(name)
        assert q.count('`') == 2 and q[0] == q[-1] == '`'


def test_quote_qualified():
    assert quote_qualified('app', 'users') == '`app`.`users`'
    with pytest.raises(IdentifierError):
        quote_qualified('app`;', 'users')
    with pytest.raises(IdentifierError):
        quote_qualified('app', 'us.ers')
