# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connections to the primary's replicas, for reading what they have applied (no Ansible import).

A replica is reached with its own connection params (:func:`mysql_connection.replica_params`) and short
timeouts, so a replica that stops answering fails a read within seconds instead of hanging the module.
Every failure is one of two kinds: :class:`ReplicaUnavailable` (it cannot be reached now: refused, timed
out, connection lost; the caller may wait and retry, for a bounded time) or :class:`DatabaseError`
(it answered with a refusal, such as wrong credentials: waiting will not help).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ConnectionFailed, DatabaseError, SpecError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import connect, describe_target, query, replica_params
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_errors import UNREACHABLE, error_code, error_message

# The longest a replica read may take before the replica counts as unreachable (connecting is bounded by connect_timeout,
# capped the same way).
READ_TIMEOUT = 10


class ReplicaUnavailable(DatabaseError):
    """The replica cannot be reached now; ``label`` names it, ``detail`` is the driver's reason."""

    def __init__(self, label, detail):
        self.label = label
        self.detail = detail
        super(ReplicaUnavailable, self).__init__('replica %s cannot be reached: %s' % (label, detail))


class Replica(object):
    """One replica: a connection opened on first use and opened again after it failed."""

    def __init__(self, params, label, read_timeout=READ_TIMEOUT, connect_fn=connect):
        self.params = dict(params, connect_timeout=max(1, min(int(params.get('connect_timeout') or 30), int(READ_TIMEOUT), int(read_timeout))))
        self.label = label
        self.read_timeout = read_timeout
        self.connect_fn = connect_fn
        self.conn = None

    def copy(self, read_timeout):
        """The same replica with its own connection and another read timeout."""
        return Replica(self.params, self.label, read_timeout=read_timeout, connect_fn=self.connect_fn)

    def _connection(self):
        if self.conn is None:
            try:
                self.conn = self.connect_fn(self.params, read_timeout=self.read_timeout)
            except ConnectionFailed as exc:
                if exc.code is None or exc.code in UNREACHABLE:
                    raise ReplicaUnavailable(self.label, str(exc))
                raise DatabaseError('replica %s: %s' % (self.label, exc))
        return self.conn

    def query(self, sql, args=None):
        """Rows of one statement on the replica; ReplicaUnavailable when it cannot be reached, the driver's error else."""
        conn = self._connection()
        try:
            return query(conn, sql, args)
        except Exception as exc:  # pylint: disable=broad-except  # driver errors: a lost connection means unreachable
            code = error_code(exc)
            # a lost or closed connection: an unreachable code, or the driver's errors without a server code (PyMySQL
            # raises InterfaceError(0, '') on a connection it has already closed)
            lost = code in UNREACHABLE or isinstance(exc, (OSError, IOError)) or (
                code in (None, 0) and type(exc).__module__.split('.', 1)[0] == 'pymysql')
            if lost:
                self.close()
                raise ReplicaUnavailable(self.label, error_message(exc) or exc.__class__.__name__)
            raise

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # pylint: disable=broad-except  # already gone
                pass
            self.conn = None


def replicas_from_params(primary, replicas, replica_timeout=60, connect_fn=connect):
    """:class:`Replica` objects for the module's ``replicas`` list; SpecError names the entry that makes no sense.

    Their reads time out after ``replica_timeout`` seconds, at least 1 and at most :data:`READ_TIMEOUT`."""
    read_timeout = max(1, min(READ_TIMEOUT, int(replica_timeout)))
    result = []
    for index, replica in enumerate(replicas or []):
        try:
            params = replica_params(primary, replica)
        except SpecError as exc:
            raise SpecError('replicas[%d]' % index, exc.message)
        result.append(Replica(params, describe_target(params), read_timeout=read_timeout, connect_fn=connect_fn))
    return result


def server_id(server):
    """``@@server_id`` of a connection or of a :class:`Replica` (anything with its ``label`` and ``query``)."""
    run = server.query if hasattr(server, 'label') else (lambda sql: query(server, sql))
    return int(run('SELECT @@GLOBAL.server_id')[0][0])
