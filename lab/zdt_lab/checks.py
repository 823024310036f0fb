"""Checks the molecule verifiers share: the sandbox stack as the scenario left it."""
import glob
import json
import os
import socket
import subprocess
import sys

import pymysql

# The verifiers call checks.get and checks.accepts.
from zdt_lab.http_probe import accepts, get  # noqa: F401  # pylint: disable=unused-import

SANDBOX = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'sandbox')
# Where MariaDB's socket is; the multihost scenario points it at the db host's own sandbox.
DB_SOCKET = os.path.join(SANDBOX, 'mariadb', 'mysqld.sock')


def ports():
    with open(os.path.join(SANDBOX, 'ports.json'), encoding='utf-8') as handle:
        return json.load(handle)


def db_query(sql, args=None, database='app'):
    conn = pymysql.connect(unix_socket=DB_SOCKET, user='root', database=database, ssl_disabled=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def columns(table):
    return [row[0] for row in db_query('SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() '
                                       'AND table_name = %s ORDER BY ordinal_position', (table,))]


def zdt_triggers():
    return db_query("SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE() "
                    "AND trigger_name LIKE 'zdt\\\\_%%'")


def load_reports():
    reports = []
    for path in sorted(glob.glob(os.path.join(SANDBOX, 'load-*.json'))):
        if path.endswith('load-job.json'):
            continue
        with open(path, encoding='utf-8') as handle:
            reports.append(json.load(handle))
    return reports


def assert_upgrade_reports_clean(runs=2):
    """Converge and the idempotence run (runs=2; 1 for a scenario without one): traffic flowed, nothing failed,
    nothing lost; the first saw both versions."""
    reports = load_reports()
    assert len(reports) == runs
    for report in reports:
        assert report['requests'] > 0
        assert report['failed'] == 0, report['failures']
        assert report['verify']['lost_writes'] == 0, report['verify']['lost']
    assert set(reports[0]['versions']) == {'1', '2'}


# Runs inside a network namespace: one HTTP GET, printed as JSON (the status and X-App-Version, or the error).
PROBE = r'''
import http.client, json, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request('GET', path)
    response = conn.getresponse()
    print(json.dumps({'status': response.status, 'version': response.getheader('X-App-Version')}))
except OSError as exc:
    print(json.dumps({'error': str(exc)}))
'''


def probe_in_netns(netns, host, port, path='/health'):
    """GET host:port/path from inside network namespace `netns`: {status, version} or {error}."""
    out = subprocess.run(['ip', 'netns', 'exec', netns, sys.executable, '-c', PROBE, host, str(port), path],
                         stdout=subprocess.PIPE, check=True, universal_newlines=True).stdout
    return json.loads(out)


def haproxy_command(admin_socket, command):
    """One command on an HAProxy admin socket (a file: no traffic to a namespace address); the whole reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(admin_socket)
        sock.sendall(command.encode() + b'\n')
        data = b''
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode()


def haproxy_stats(admin_socket, backend='app'):
    """{server: row} of HAProxy's `show stat` for one backend."""
    lines = [line for line in haproxy_command(admin_socket, 'show stat').splitlines() if line.strip()]
    header = lines[0].lstrip('# ').split(',')
    rows = [dict(zip(header, line.split(','))) for line in lines[1:]]
    return {row['svname']: row for row in rows if row['pxname'] == backend}
