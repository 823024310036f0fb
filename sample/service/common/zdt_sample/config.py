"""Configuration of the sample service, read from the environment."""
import os
import ssl


class ConfigError(Exception):
    """A configuration value is missing or invalid."""


def _int(env, name, default, minimum=None):
    raw = env.get(name, '')
    if raw == '':
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError('%s must be an integer, got %r' % (name, raw)) from None
    if minimum is not None and value < minimum:
        raise ConfigError('%s must be >= %d, got %d' % (name, minimum, value))
    return value


def _float(env, name, default, minimum=0.0):
    raw = env.get(name, '')
    if raw == '':
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError('%s must be a number, got %r' % (name, raw)) from None
    if value < minimum:
        raise ConfigError('%s must be >= %s, got %s' % (name, minimum, value))
    return value


def _first(env, names):
    """The first of ``names`` set to a non-empty value (its name and value), else (names[0], '')."""
    for name in names:
        if env.get(name, '') != '':
            return name, env[name]
    return names[0], ''


def _bool(env, name, default=None):
    """'1/true/yes/on' -> True, '0/false/no/off' -> False, unset or empty -> default."""
    raw = env.get(name, '').strip().lower()
    if raw == '':
        return default
    if raw in ('1', 'true', 'yes', 'on'):
        return True
    if raw in ('0', 'false', 'no', 'off'):
        return False
    raise ConfigError('%s must be a boolean (1/0, true/false), got %r' % (name, raw))


class Config:
    """All settings of one service process.  Every value comes from an ``APP_*``, ``DB_*`` or ``ZDT_*`` variable.

    Deployed by zdt.bluegreen, the instance gets ``ZDT_PORT``, ``ZDT_BIND``, ``ZDT_COLOR`` and ``ZDT_VERSION`` (the app
    contract); they win over ``APP_PORT``, ``APP_BIND`` and ``APP_COLOR``, which remain for running it by hand.
    """

    # pylint: disable=too-many-instance-attributes,too-few-public-methods

    def __init__(self, env=None):
        env = os.environ if env is None else env
        port_name, _port = _first(env, ('ZDT_PORT', 'APP_PORT'))
        self.port = _int(env, port_name, 8000, minimum=0)
        self.bind = _first(env, ('ZDT_BIND', 'APP_BIND'))[1] or '127.0.0.1'
        self.color = _first(env, ('ZDT_COLOR', 'APP_COLOR'))[1] or 'none'
        self.threads = _int(env, 'APP_THREADS', 32, minimum=1)
        self.keepalive_timeout = _float(env, 'APP_KEEPALIVE_TIMEOUT', 75.0, minimum=0.1)
        self.stop_timeout = _float(env, 'APP_STOP_TIMEOUT', 25.0)
        self.pidfile = env.get('APP_PIDFILE') or None
        self.test_hooks = bool(_bool(env, 'APP_TEST_HOOKS', False))
        # Test-only fault (with APP_TEST_HOOKS=1): GET /test/check answers 503 once this many requests were served.
        self.test_fail_check_after = _int(env, 'APP_TEST_FAIL_CHECK_AFTER', None, minimum=0)
        self.access_log = bool(_bool(env, 'APP_ACCESS_LOG', False))
        self.db_host = env.get('DB_HOST') or '127.0.0.1'
        self.db_port = _int(env, 'DB_PORT', 3306, minimum=1)
        self.db_socket = env.get('DB_SOCKET') or None
        self.db_user = env.get('DB_USER') or 'zdt'
        self.db_password = env.get('DB_PASSWORD', '')
        password_file = env.get('DB_PASSWORD_FILE')
        if password_file:
            try:
                with open(password_file, 'r', encoding='utf-8') as handle:
                    self.db_password = handle.read().strip()
            except OSError as exc:
                raise ConfigError('DB_PASSWORD_FILE %s cannot be read: %s' % (password_file, exc)) from None
        # TLS to the database: disabled | preferred | required.  Default: disabled over a unix socket or loopback
        # (PyMySQL's implicit "preferred" builds a TLS context per connection: ~90 ms of CPU each), else preferred.
        self.db_ssl = (env.get('DB_SSL') or '').strip().lower() or None
        if self.db_ssl not in (None, 'disabled', 'preferred', 'required'):
            raise ConfigError('DB_SSL must be disabled, preferred or required, got %r' % self.db_ssl)
        if self.db_ssl is None:
            local = self.db_socket or self.db_host in ('127.0.0.1', 'localhost', '::1')
            self.db_ssl = 'disabled' if local else 'preferred'
        self.db_ssl_ca = env.get('DB_SSL_CA') or None
        self.db_pool_warm = _int(env, 'DB_POOL_WARM', 4, minimum=0)
        self.db_name = env.get('DB_NAME') or ''
        if not self.db_name:
            raise ConfigError('DB_NAME is required')
        self.db_connect_timeout = _float(env, 'DB_CONNECT_TIMEOUT', 5.0, minimum=0.1)
        self.db_retries = _int(env, 'DB_RETRIES', 5, minimum=0)
        # seconds a row lock is waited for before 1205 (then the transaction is retried); unset = server default
        self.db_lock_wait_timeout = _int(env, 'DB_LOCK_WAIT_TIMEOUT', None, minimum=1)
        # v2 only: None = detect from information_schema, True/False = forced.
        self.single_address = _bool(env, 'ZDT_SINGLE_ADDRESS', None)
        self.schema_poll = _float(env, 'ZDT_SCHEMA_POLL', 2.0)

    def db_params(self):
        """Keyword arguments for pymysql.connect."""
        params = {'user': self.db_user, 'password': self.db_password, 'database': self.db_name,
                  'connect_timeout': self.db_connect_timeout, 'charset': 'utf8mb4', 'autocommit': False}
        if self.db_ssl == 'disabled':
            params['ssl_disabled'] = True
        elif self.db_ssl == 'required':
            if self.db_ssl_ca:
                params.update(ssl_ca=self.db_ssl_ca, ssl_verify_cert=True)
            else:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                params['ssl'] = context
        if self.db_lock_wait_timeout is not None:
            params['init_command'] = 'SET SESSION innodb_lock_wait_timeout = %d' % self.db_lock_wait_timeout
        if self.db_socket:
            params['unix_socket'] = self.db_socket
        else:
            params['host'] = self.db_host
            params['port'] = self.db_port
        return params
