"""The fault of the multihost scenario: lb2's admin socket made unusable mid-switch, and put back.

    fault.py lose HOSTS_DIR     wait (bounded) until lb1 and lb2 both hold the first canary step (the green servers
                                ready at a share below 100 %), then move lb2's admin socket away and its monitoring
                                socket (level operator: reads work, every change is refused) to its path
    fault.py restore HOSTS_DIR  the sockets back where they were

Unix socket files only (the namespaces share the file system): nothing is sent over the network.
"""
import os
import sys
import time

from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_runtime import RuntimeClient


def paths(hosts_dir):
    base = os.path.join(hosts_dir, 'lb2', 'haproxy')
    return os.path.join(base, 'admin.sock'), os.path.join(base, 'monitor.sock'), os.path.join(base, 'admin.sock.lost')


def in_first_step(hosts_dir, lb):
    with RuntimeClient(os.path.join(hosts_dir, lb, 'haproxy', 'admin.sock'), timeout=2) as client:
        servers = client.servers('app')
    green = [s for n, s in servers.items() if n.startswith('green')]
    blue = [s for n, s in servers.items() if n.startswith('blue')]
    return green and all(s.admin_state == 'ready' for s in green + blue)


def lose(hosts_dir, timeout=300):
    admin, monitor, lost = paths(hosts_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if in_first_step(hosts_dir, 'lb1') and in_first_step(hosts_dir, 'lb2'):
                os.rename(admin, lost)
                os.rename(monitor, admin)
                print('lb2: admin socket lost, the monitoring socket (level operator) in its place')
                return 0
        except OSError:
            pass
        time.sleep(0.05)
    print('the first canary step never showed on both load balancers within %d s' % timeout)
    return 1


def restore(hosts_dir):
    admin, monitor, lost = paths(hosts_dir)
    if os.path.exists(lost):
        os.rename(admin, monitor)
        os.rename(lost, admin)
        print('lb2: admin socket back')
    return 0


if __name__ == '__main__':
    sys.exit({'lose': lose, 'restore': restore}[sys.argv[1]](sys.argv[2]))
