"""The shared argument specs and their doc fragments say the same thing; one bounds rule per option."""
import importlib

import pytest
import yaml

from ansible_collections.zdt.bluegreen.plugins.module_utils import module_args

PAIRS = [
    ('MYSQL_CONNECTION_SPEC', 'mysql'),
    ('MIGRATION_SPEC', 'migration'),
    ('DDL_SPEC', 'ddl'),
    ('HAPROXY_SOCKET_SPEC', 'haproxy'),
    ('HAPROXY_SERVERS_SPEC', 'haproxy_servers'),
]


def fragment_options(name):
    module = importlib.import_module('ansible_collections.zdt.bluegreen.plugins.doc_fragments.%s' % name)
    return yaml.safe_load(module.ModuleDocFragment.DOCUMENTATION)['options']


@pytest.mark.parametrize('spec_name,fragment', PAIRS)
def test_each_spec_matches_its_doc_fragment(spec_name, fragment):
    spec = getattr(module_args, spec_name)
    documented = fragment_options(fragment)
    assert sorted(spec) == sorted(documented)
    for option, entry in spec.items():
        doc = documented[option]
        assert doc.get('type', 'str') == entry.get('type', 'str'), option
        assert doc.get('default') == entry.get('default'), option
        assert bool(doc.get('required')) == bool(entry.get('required')), option
        assert doc.get('aliases', []) == entry.get('aliases', []), option


def test_argument_spec_merges_shared_specs_and_module_options():
    spec = module_args.argument_spec(module_args.MIGRATION_SPEC, module_args.DDL_SPEC, state=dict(type='str'))
    assert set(spec) == {'migration', 'lock_wait_timeout', 'ddl_retries', 'state'}


@pytest.mark.parametrize('params,expected', [
    ({'lock_wait_timeout': 1, 'ddl_retries': 0}, None),
    ({'lock_wait_timeout': 0}, 'lock_wait_timeout must be at least 1, got 0'),
    ({'ddl_retries': -1}, 'ddl_retries must be at least 0, got -1'),
    ({'chunk_time': 0.0}, 'chunk_time must be greater than 0, got 0.0'),
    ({'chunk_size': 0}, 'chunk_size must be at least 1, got 0'),
    ({'max_threads_running': 0}, None),
    ({'timeout': 0, 'interval': 0.1}, None),
    ({'interval': 0}, 'interval must be greater than 0, got 0'),
    ({'timeout': None, 'unrelated': -5}, None),
    ({'min_requests': 1, 'max_error_rate': 0.0}, None),
    ({'max_error_rate': 1}, None),
    ({'min_requests': 0}, 'min_requests must be at least 1, got 0'),
    ({'max_error_rate': -0.01}, 'max_error_rate must be at least 0, got -0.01'),
    ({'max_error_rate': 1.5}, 'max_error_rate must be at most 1, got 1.5'),
])
def test_bounds_problem(params, expected):
    assert module_args.bounds_problem(params) == expected


def test_bounds_problem_names_every_option_out_of_bounds():
    message = module_args.bounds_problem({'chunk_size': 0, 'lock_wait_timeout': 0})
    assert message == 'chunk_size must be at least 1, got 0; lock_wait_timeout must be at least 1, got 0'


def test_bounds_of_the_replica_options_and_of_each_replica_entry():
    assert module_args.bounds_problem({'max_replica_lag': 0.5, 'replica_timeout': 0}) is None
    assert module_args.bounds_problem({'max_replica_lag': 0}) == 'max_replica_lag must be greater than 0, got 0'
    assert module_args.bounds_problem({'replicas': [{'login_port': 3307}, {'login_port': 0, 'connect_timeout': 0}]}) == (
        'replicas[1].connect_timeout must be at least 1, got 0; replicas[1].login_port must be at least 1, got 0')


def test_a_replica_entry_has_the_connection_options_without_database_or_defaults():
    assert sorted(module_args.REPLICA_OPTIONS) == sorted(k for k in module_args.MYSQL_CONNECTION_SPEC if k != 'database')
    assert all('default' not in option for option in module_args.REPLICA_OPTIONS.values())
    assert module_args.REPLICA_OPTIONS['login_password']['no_log'] is True
