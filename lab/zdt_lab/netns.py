"""Network namespaces as test hosts for the multihost molecule scenario.

Each host is a namespace with its own loopback and an `eth0` on a private /24; the hosts meet
on a bridge that lives in a switch namespace of its own, so the root namespace has no interface
on that network.  A blackhole route for the subnet in the root namespace makes sure that a
stray packet from the root namespace to a host address is dropped here instead of leaving the
machine.  Each host gets an interpreter wrapper (`bin/python-<host>`) that runs Python inside
its namespace: Ansible reaches the host with `ansible_connection: local` and
`ansible_python_interpreter` pointing at the wrapper.

    netns_hosts.py --dir DIR up db lb1 blue1 blue2 green1 green2
    netns_hosts.py --dir DIR down
"""
import argparse
import ipaddress
import json
import os
import subprocess
import sys

PREFIX = 'zdt-'
SUBNET = ipaddress.ip_network(os.environ.get('ZDT_NETNS_SUBNET', '10.231.77.0/24'))
SWITCH = PREFIX + 'switch'


def ip(*args, check=True):
    return subprocess.run(['ip'] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=check,
                          universal_newlines=True)


def namespaces():
    out = ip('netns', 'list').stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def blackhole_present():
    return str(SUBNET) in ip('route', 'show', 'type', 'blackhole').stdout


def up(state_dir, hosts, python):
    os.makedirs(os.path.join(state_dir, 'bin'), exist_ok=True)
    if not blackhole_present():
        ip('route', 'add', 'blackhole', str(SUBNET))
    existing = namespaces()
    if SWITCH not in existing:
        ip('netns', 'add', SWITCH)
        ip('-n', SWITCH, 'link', 'add', 'br0', 'type', 'bridge')
        ip('-n', SWITCH, 'link', 'set', 'br0', 'up')
        ip('-n', SWITCH, 'link', 'set', 'lo', 'up')
    addresses = list(SUBNET.hosts())
    plan = {}
    for index, host in enumerate(hosts, start=1):
        name = PREFIX + host
        address = addresses[index]
        plan[host] = {'netns': name, 'address': str(address), 'python': os.path.join(state_dir, 'bin', 'python-' + host)}
        if name not in existing:
            ip('netns', 'add', name)
            veth = 'v%s%d' % (host[:6], index)
            ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name)
            ip('link', 'set', veth, 'netns', SWITCH)
            ip('-n', SWITCH, 'link', 'set', veth, 'master', 'br0')
            ip('-n', SWITCH, 'link', 'set', veth, 'up')
            ip('-n', name, 'addr', 'add', '%s/%d' % (address, SUBNET.prefixlen), 'dev', 'eth0')
            ip('-n', name, 'link', 'set', 'eth0', 'up')
            ip('-n', name, 'link', 'set', 'lo', 'up')
        wrapper = plan[host]['python']
        with open(wrapper, 'w', encoding='utf-8') as handle:
            handle.write('#!/bin/sh\nexec ip netns exec %s %s "$@"\n' % (name, python))
        os.chmod(wrapper, 0o755)
    with open(os.path.join(state_dir, 'hosts.json'), 'w', encoding='utf-8') as handle:
        json.dump(plan, handle, indent=1)
    return plan


def pids_in(name):
    out = ip('netns', 'pids', name, check=False).stdout
    return [int(pid) for pid in out.split()]


def down(state_dir):
    """Remove the namespaces this tool made; refuses while a process still runs inside one."""
    try:
        with open(os.path.join(state_dir, 'hosts.json'), encoding='utf-8') as handle:
            plan = json.load(handle)
    except (OSError, ValueError):
        plan = {}
    busy = {name: pids_in(name) for name in [h['netns'] for h in plan.values()] if pids_in(name)}
    if busy:
        raise SystemExit('processes still run in %s; stop them first' % json.dumps(busy))
    present = namespaces()
    for host in plan.values():
        if host['netns'] in present:
            ip('netns', 'del', host['netns'])
    if SWITCH in present and not [n for n in namespaces() if n.startswith(PREFIX) and n != SWITCH]:
        ip('netns', 'del', SWITCH)
        if blackhole_present():
            ip('route', 'del', 'blackhole', str(SUBNET))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--dir', required=True, help='state directory (wrappers, hosts.json)')
    parser.add_argument('--python', default=sys.executable, help='interpreter the wrappers run')
    parser.add_argument('action', choices=['up', 'down', 'show'])
    parser.add_argument('hosts', nargs='*')
    args = parser.parse_args(argv)
    if args.action == 'up':
        print(json.dumps(up(args.dir, args.hosts, args.python), indent=1))
    elif args.action == 'down':
        down(args.dir)
    else:
        print(json.dumps({'namespaces': [n for n in namespaces() if n.startswith(PREFIX)], 'blackhole': blackhole_present()}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
