"""Database access: a bounded connection pool and a transaction runner that retries transient errors."""
import logging
import threading
import time

try:
    import pymysql
except ImportError:  # the unit tests exercise the retry logic with fakes
    pymysql = None

LOG = logging.getLogger('zdt_sample.db')

DEADLOCK = 1213
LOCK_WAIT_TIMEOUT = 1205
RETRYABLE = (DEADLOCK, LOCK_WAIT_TIMEOUT)
CONNECTION_LOST = (2006, 2013, 2055)   # server gone away, lost connection during query, lost connection (SSL/socket)
CANNOT_CONNECT = (2002, 2003)


class DatabaseUnavailable(Exception):
    """The database could not be reached, or the connection broke where a retry is not safe."""


class AbortTransaction(Exception):
    """Raised by application code inside a transaction to roll it back (no database error involved)."""


class TransactionFailed(Exception):
    """A transient error persisted after every retry."""

    def __init__(self, code, message, attempts):
        super().__init__('%s (MySQL error %s) after %d attempts' % (message, code, attempts))
        self.code = code
        self.attempts = attempts


def error_code(exc):
    """The MySQL error number of a PyMySQL exception, or None."""
    args = getattr(exc, 'args', ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def is_connection_error(exc):
    if pymysql is not None and isinstance(exc, pymysql.err.InterfaceError):
        return True
    if isinstance(exc, (ConnectionError, BrokenPipeError)):
        return True
    return error_code(exc) in CONNECTION_LOST + CANNOT_CONNECT


class Pool:
    """A LIFO pool of PyMySQL connections, at most ``size`` open at a time."""

    def __init__(self, connect, size):
        self._connect = connect
        self._size = size
        self._idle = []
        self._open = 0
        self._cond = threading.Condition()
        self._closed = False

    def acquire(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    raise DatabaseUnavailable('connection pool is closed')
                if self._idle:
                    return self._idle.pop()
                if self._open < self._size:
                    self._open += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DatabaseUnavailable('no database connection free within %ss' % timeout)
                self._cond.wait(left)
        try:
            return self._connect()
        except Exception as exc:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            if is_connection_error(exc) or (pymysql is not None and isinstance(exc, pymysql.err.OperationalError)):
                raise DatabaseUnavailable('cannot connect to the database: %s' % (exc,)) from None
            raise

    def warm(self, count):
        """Open up to ``count`` connections now (so the first requests do not pay for connecting); returns how many."""
        conns = []
        try:
            for _unused in range(min(count, self._size)):
                conns.append(self.acquire(timeout=5.0))
        finally:
            for conn in conns:
                self.release(conn)
        return len(conns)

    def release(self, conn, broken=False):
        with self._cond:
            if broken or self._closed:
                self._open -= 1
                self._cond.notify()
                _close_quietly(conn)
                return
            self._idle.append(conn)
            self._cond.notify()

    def close(self):
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            _close_quietly(conn)

    @property
    def stats(self):
        with self._cond:
            return {'open': self._open, 'idle': len(self._idle), 'size': self._size}


def _close_quietly(conn):
    try:
        conn.close()
    except Exception:  # pylint: disable=broad-except
        pass


class _CommitSent(Exception):
    """Internal: the connection broke during COMMIT - the outcome is unknown."""


def run_transaction(pool, work, retries=5, backoff=0.02, sleep=time.sleep):
    """Run ``work(cursor)`` in one transaction and return its result.

    Deadlock (1213) and lock wait timeout (1205) roll back and re-run the whole transaction up to
    ``retries`` times with a growing backoff.  A lost connection before COMMIT is retried once on a
    fresh connection; a lost connection during COMMIT is reported (the outcome is unknown, so
    repeating the writes could apply them twice).  Any other error propagates unchanged.
    """
    attempt = 0
    reconnected = False
    while True:
        attempt += 1
        conn = pool.acquire()
        broken = False
        try:
            try:
                with conn.cursor() as cur:
                    result = work(cur)
            except BaseException as exc:
                # A failed statement may leave session state behind (user variables set by a trigger
                # body that stopped half-way): never hand this connection to another request.
                broken = not isinstance(exc, AbortTransaction)
                try:
                    conn.rollback()
                except Exception:  # pylint: disable=broad-except
                    pass
                raise
            try:
                conn.commit()
            except Exception as exc:
                if is_connection_error(exc):
                    broken = True
                    raise DatabaseUnavailable('connection lost during COMMIT: %s' % (exc,)) from None
                raise
            return result
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            code = error_code(exc)
            if is_connection_error(exc):
                broken = True
                if reconnected:
                    raise DatabaseUnavailable('database connection lost again: %s' % (exc,)) from None
                reconnected = True
                LOG.warning('database connection lost (%s); retrying once on a new connection', exc)
                continue
            if code in RETRYABLE:
                if attempt > retries:
                    raise TransactionFailed(code, str(exc), attempt) from None
                LOG.info('transient error %s on attempt %d; retrying the transaction', code, attempt)
                sleep(backoff * (2 ** (attempt - 1)))
                continue
            raise
        finally:
            pool.release(conn, broken=broken)
