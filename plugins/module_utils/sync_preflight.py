# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server settings and privileges a sync needs, checked before anything changes (no Ansible import).

One function per precondition; each raises DatabaseError naming the setting and the fix.
:func:`check_server` runs those that concern the server, in the order in which a later check relies on
an earlier one (the version first: the other checks read variables every supported version has).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import time

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import query
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_inspect import server_version
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_replicas import ReplicaUnavailable, server_id

# The oldest servers whose SQL the sync uses: several triggers on one table for the same event and timing
# (the sync's next to the application's own) came with MariaDB 10.2.3 and MySQL 5.7.2.
MIN_VERSIONS = dict(mariadb=(10, 2, 3), mysql=(5, 7, 2))


def check_server_version(conn):
    """Refuse a server older than :data:`MIN_VERSIONS`."""
    flavor, version, raw = server_version(conn)
    low = MIN_VERSIONS[flavor]
    if tuple(version) < low:
        raise DatabaseError('server version %s is too old for the sync: it needs %s %s or later (several triggers on one table '
                            'for the same event, next to the application\'s own). Upgrade the server and retry'
                            % (raw, 'MariaDB' if flavor == 'mariadb' else 'MySQL', '.'.join(str(n) for n in low)))


def check_galera(conn):
    """Refuse a Galera cluster node (``wsrep_on=ON``) until the sync supports one."""
    rows = query(conn, "SHOW VARIABLES LIKE 'wsrep_on'")
    if rows and str(rows[0][1]).upper() == 'ON':
        raise DatabaseError('the server is a Galera cluster node (wsrep_on=ON): the sync does not support Galera yet (the copy is '
                            'exact because of row locks and a named lock that Galera does not hold across its nodes). Run the '
                            'upgrade against a server that is not a Galera node')


def check_binlog_format(conn):
    """With binary logging on, refuse ``binlog_format=STATEMENT`` for the sync's session.

    The copy writes under READ COMMITTED, which InnoDB refuses to log as statements (error 1665), and that
    failure would come only after the triggers exist."""
    row = query(conn, 'SELECT @@GLOBAL.log_bin, @@SESSION.binlog_format')[0]
    if int(row[0] or 0) and str(row[1]).upper() == 'STATEMENT':
        raise DatabaseError('binary logging is on with binlog_format=STATEMENT: InnoDB refuses to log the backfill\'s READ COMMITTED '
                            'writes as statements, so the copy would fail after the triggers exist. Set binlog_format=ROW '
                            '(or MIXED) in the server configuration and with SET GLOBAL binlog_format = \'ROW\', then retry')


def check_trigger_privileges(conn):
    """With binary logging on, creating triggers needs SUPER or log_bin_trust_function_creators: fail up front."""
    row = query(conn, 'SELECT @@GLOBAL.log_bin, @@GLOBAL.log_bin_trust_function_creators')[0]
    if not int(row[0] or 0) or int(row[1] or 0):
        return
    grants = ' '.join(r[0] for r in query(conn, 'SHOW GRANTS')).upper()
    if re.search(r'GRANT (ALL PRIVILEGES|[^`]*\bSUPER\b)[^`]* ON \*\.\*', grants):
        return
    raise DatabaseError('binary logging is on and the login user has neither SUPER nor does the server set '
                        'log_bin_trust_function_creators=1: the server would refuse to create the sync triggers. '
                        'Grant SUPER (or set log_bin_trust_function_creators=1) and retry')


def check_replicas(conn, replicas, replica_timeout, sleep=time.sleep, clock=time.time):
    """Each replica answers (waiting at most ``replica_timeout`` seconds for one that cannot be reached) and is not the
    primary itself (another ``server_id``)."""
    if not replicas:
        return
    primary_id = server_id(conn)
    for replica in replicas:
        deadline = clock() + float(replica_timeout)
        while True:
            try:
                found = server_id(replica)
                break
            except ReplicaUnavailable as exc:
                if clock() >= deadline:
                    raise DatabaseError('%s, for %s s (replica_timeout): nothing was changed. Make it reachable or remove it '
                                        'from replicas, and retry' % (exc, replica_timeout))
                sleep(0.5)
        if found == primary_id:
            raise DatabaseError('replica %s has the primary\'s server_id %d: it is the primary itself (or misconfigured). Give '
                                'the replicas\' own addresses in replicas' % (replica.label, found))


def check_server(conn, creates_triggers):
    """Every server precondition of ``state=present``; the trigger privileges only when triggers are to be created."""
    check_server_version(conn)
    check_galera(conn)
    check_binlog_format(conn)
    if creates_triggers:
        check_trigger_privileges(conn)
