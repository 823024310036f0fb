# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by several modules, each the twin of one doc fragment, and one bounds rule per option.

=========================  ==========================================  =========================================
spec                       doc fragment (plugins/doc_fragments/)       modules
=========================  ==========================================  =========================================
``MYSQL_CONNECTION_SPEC``  ``mysql``                                   every MySQL module
``MIGRATION_SPEC``         ``migration``                               every MySQL module
``DDL_SPEC``               ``ddl``                                     mysql_expand, mysql_trigger_sync
``HAPROXY_SOCKET_SPEC``    ``haproxy``                                 haproxy_swap, drain_wait, haproxy_stats
``HAPROXY_SERVERS_SPEC``   ``haproxy_servers``                         drain_wait, haproxy_stats
=========================  ==========================================  =========================================

``tests/unit/test_module_args.py`` checks that each spec and its fragment list the same options with the
same types and defaults.  :data:`BOUNDS` holds the numeric limits: a module calls :func:`bounds_problem`
with its params instead of writing its own comparison, so an option means the same in every module.
No Ansible import.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

MYSQL_CONNECTION_SPEC = dict(
    login_host=dict(type='str', default='localhost'),
    login_port=dict(type='int', default=3306),
    login_user=dict(type='str'),
    login_password=dict(type='str', no_log=True),
    login_unix_socket=dict(type='str'),
    config_file=dict(type='path', default='~/.my.cnf'),
    connect_timeout=dict(type='int', default=30),
    ca_cert=dict(type='path', aliases=['ssl_ca']),
    client_cert=dict(type='path', aliases=['ssl_cert']),
    client_key=dict(type='path', aliases=['ssl_key']),
    check_hostname=dict(type='bool'),
    database=dict(type='str', required=True),
)

# One entry of mysql_trigger_sync's ``replicas``: the connection options without defaults (an option left out takes the
# primary's value, see mysql_connection.replica_params) and without ``database`` (a replica holds the same database).
REPLICA_OPTIONS = dict((name, dict((k, v) for k, v in option.items() if k != 'default'))
                       for name, option in MYSQL_CONNECTION_SPEC.items() if name != 'database')

MIGRATION_SPEC = dict(
    migration=dict(type='raw', required=True),
)

DDL_SPEC = dict(
    lock_wait_timeout=dict(type='int', default=1),
    ddl_retries=dict(type='int', default=10),
)

HAPROXY_SOCKET_SPEC = dict(
    socket=dict(type='str', required=True),
    backend=dict(type='str', required=True),
)

HAPROXY_SERVERS_SPEC = dict(
    servers=dict(type='list', elements='str'),
    colors=dict(type='dict'),
    color=dict(type='str'),
)
# how the HAPROXY_SERVERS_SPEC options combine (AnsibleModule arguments)
HAPROXY_SERVERS_RULES = dict(
    mutually_exclusive=[('servers', 'colors'), ('servers', 'color')],
    required_together=[('colors', 'color')],
)

# option -> (lowest allowed value, whether the lowest value itself is allowed[, highest allowed value])
BOUNDS = dict(
    login_port=(1, True),
    connect_timeout=(1, True),
    lock_wait_timeout=(1, True),      # the server's own minimum for the session variable
    ddl_retries=(0, True),
    chunk_time=(0, False),
    chunk_size=(1, True),
    max_threads_running=(0, True),    # 0 turns the Threads_running throttle off
    timeout=(0, True),
    interval=(0, False),
    repeat=(1, True),
    stale_after=(1, True),
    wait=(0, True),
    min_requests=(1, True),
    max_error_rate=(0, True, 1),      # a share of the requests
    max_replica_lag=(0, False),
    replica_timeout=(0, True),
)


def argument_spec(*specs, **extra):
    """One module's argument spec: the shared specs it uses plus its own options."""
    result = {}
    for spec in specs:
        result.update(spec)
    result.update(extra)
    return result


def bounds_problem(params, prefix=''):
    """A message naming every option of ``params`` outside its bound in :data:`BOUNDS`, or None.

    The entries of a list of dicts (``replicas``) are checked too, named ``replicas[0].login_port`` and so on."""
    problems = []
    for name in sorted(params):
        if isinstance(params[name], list):
            for index, entry in enumerate(params[name]):
                if isinstance(entry, dict):
                    problem = bounds_problem(entry, '%s%s[%d].' % (prefix, name, index))
                    if problem:
                        problems.append(problem)
    for name in sorted(BOUNDS):
        value = params.get(name)
        if value is None or isinstance(value, bool):
            continue
        low, inclusive = BOUNDS[name][:2]
        high = BOUNDS[name][2] if len(BOUNDS[name]) > 2 else None
        if value < low or (value == low and not inclusive):
            problems.append('%s%s must be %s %s, got %s' % (prefix, name, 'at least' if inclusive else 'greater than', low, value))
        elif high is not None and value > high:
            problems.append('%s%s must be at most %s, got %s' % (prefix, name, high, value))
    return '; '.join(problems) or None
