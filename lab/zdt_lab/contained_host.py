"""Contained systemd hosts: systemd booted as PID 1 of its own namespaces, on a root of its own.

Booted on the machine's root, systemd empties the machine's /tmp (systemd-tmpfiles), starts every unit the
machine enables and creates cgroups at the top of the machine's hierarchies. A contained host is set up so that it
can do none of this, before systemd runs:

- its root is an overlay with the machine's / as the (read-only) lower layer and a private upper directory
  (``<dir>/<host>/upper``): everything systemd, journald, tmpfiles and the roles write lands there; it survives a
  power-off (a reboot boots the same upper) and goes with ``destroy``;
- /tmp, /var/tmp and /run are fresh tmpfs, /dev a minimal tmpfs (null, zero, full, random, urandom, tty, a private
  devpts), /proc its own pid namespace's, /proc/sys and /sys read-only;
- its own pid, mount, UTS, IPC and cgroup namespaces, and the network namespace it is given (never the machine's);
- its cgroup namespace is rooted in ``<cgroup v2 root>/zdt-contained-<host>-<hash of the state directory>`` (the
  launcher moves itself there first; the root is /sys/fs/cgroup/unified on this hybrid machine), and systemd mounts
  the v2 hierarchy only: the cgroups it creates are below that directory and are removed after the power-off;
- it boots ``zdt-contained.target`` (multi-user.target plus nothing else): inside the overlay, every unit the machine
  enables, every generator and the units that act on the kernel or hardware are masked.

The launcher's last step, inside the new namespaces, checks all of this (/ is the overlay on this host's upper
directory; /tmp, /var/tmp and /run are tmpfs mounts of their own and empty; the network, mount, pid and cgroup
namespaces are not the machine's) and refuses to start systemd otherwise (exit status 2, the reason in the log).

Commands run inside with ``nsenter`` (``ContainedHost.command``); ``<dir>/<host>/python`` is an interpreter wrapper
for Ansible (``ansible_connection: local``). Paths given as ``shares`` are bind-mounted from the machine at the same
path (Ansible's ``~/.ansible/tmp``, where the controller puts module files and copy/template/unarchive payloads).

Used by tools/contained_hosts.py, tests/integration/test_systemd_contained_host.py and molecule/systemd.
"""
import argparse
import ctypes
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time


def _cgroup2_root():
    """Where the machine mounts the cgroup v2 hierarchy: /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid)."""
    with open('/proc/self/mounts', encoding='utf-8') as handle:
        points = [line.split()[1] for line in handle if line.split()[2] == 'cgroup2']
    for candidate in ('/sys/fs/cgroup', '/sys/fs/cgroup/unified'):
        if candidate in points:
            return candidate
    return '/sys/fs/cgroup/unified'


CGROUP_ROOT = _cgroup2_root()
SYSTEMD = '/lib/systemd/systemd'
TARGET = 'zdt-contained.target'
OVERLAY_MAGIC = 0x794c7630
REFUSED = 2
NAMESPACES = ('net', 'mnt', 'pid', 'cgroup', 'uts', 'ipc')
# Units that act on the kernel, the hardware or the machine's file systems; masked inside the overlay.
KERNEL_UNITS = [
    'dev-hugepages.mount', 'dev-mqueue.mount', 'proc-sys-fs-binfmt_misc.automount', 'proc-sys-fs-binfmt_misc.mount',
    'sys-fs-fuse-connections.mount', 'sys-kernel-config.mount', 'sys-kernel-debug.mount', 'sys-kernel-tracing.mount',
    'kmod-static-nodes.service', 'systemd-binfmt.service', 'systemd-modules-load.service', 'systemd-sysctl.service',
    'systemd-udevd.service', 'systemd-udev-trigger.service', 'systemd-udev-settle.service', 'systemd-udevd-control.socket',
    'systemd-udevd-kernel.socket', 'systemd-journald-audit.socket', 'systemd-pcrphase.service',
    'systemd-pcrphase-sysinit.service', 'systemd-repart.service', 'systemd-firstboot.service',
    'systemd-machine-id-commit.service', 'systemd-random-seed.service', 'systemd-remount-fs.service',
    'systemd-fsck-root.service', 'systemd-tmpfiles-setup-dev.service', 'systemd-timesyncd.service',
    'systemd-networkd.service', 'systemd-resolved.service', 'systemd-hwdb-update.service', 'systemd-pstore.service',
    'console-getty.service', 'getty@.service', 'serial-getty@.service', 'container-getty@.service',
    'swap.target', 'cryptsetup.target', 'remote-fs.target', 'timers.target']
GENERATOR_DIRS = ['/lib/systemd/system-generators', '/usr/lib/systemd/system-generators', '/etc/systemd/system-generators']
DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty']


class ContainedHostError(RuntimeError):
    pass


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _mount(source, target, fstype=None, options=None, flags=()):
    argv = ['mount']
    if fstype:
        argv += ['-t', fstype]
    for flag in flags:
        argv.append(flag)
    if options:
        argv += ['-o', options]
    argv += [source, target]
    subprocess.run(argv, check=True)


def _start_time(pid):
    """Kernel start time of pid (field 22 of /proc/PID/stat), or None when it does not run."""
    try:
        with open('/proc/%d/stat' % pid, encoding='utf-8') as handle:
            return int(handle.read().rsplit(')', 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _mountinfo():
    """{mount point: (fs type, super options)} of this mount namespace (the last mount on a point wins)."""
    mounts = {}
    with open('/proc/self/mountinfo', encoding='utf-8') as handle:
        for line in handle:
            fields = line.split()
            tail = fields[fields.index('-') + 1:]
            mounts[fields[4].replace('\\040', ' ')] = (tail[0], tail[2] if len(tail) > 2 else '')
    return mounts


def isolation_problems(config):
    """What is not contained, seen from inside the new namespaces just before systemd would start (empty: all is)."""
    problems = []
    mounts = _mountinfo()
    fstype, options = mounts.get('/', ('?', ''))
    if fstype != 'overlay' or 'upperdir=%s' % config['upper'] not in options.split(','):
        problems.append('/ is %s, not the overlay on %s' % (fstype, config['upper']))
    for path in ('/tmp', '/var/tmp', '/run'):
        if mounts.get(path, ('none',))[0] != 'tmpfs':
            problems.append('%s is %s, not a tmpfs of its own' % (path, mounts.get(path, ('not a mount',))[0]))
        elif os.listdir(path):
            problems.append('%s is not fresh: it holds %s' % (path, sorted(os.listdir(path))[:5]))
    for kind in NAMESPACES:
        if os.stat('/proc/self/ns/' + kind).st_ino in config['outside_ns'][kind]:
            problems.append('the %s namespace is the machine\'s' % kind)
    if os.getpid() != 1:
        problems.append('not PID 1 of a pid namespace of its own (pid %d)' % os.getpid())
    return problems


def _init(config_path):
    """Inside the new namespaces (PID 1): build the root, check it, then become systemd."""
    with open(config_path, encoding='utf-8') as handle:
        config = json.load(handle)
    merged = config['merged']
    _mount('overlay', merged, 'overlay', 'lowerdir=/,upperdir=%s,workdir=%s' % (config['upper'], config['work']))
    for path, mode in (('run', '0755'), ('tmp', '1777'), ('var/tmp', '1777')):
        _mount('tmpfs', os.path.join(merged, path), 'tmpfs', 'mode=%s,nosuid,nodev' % mode)
    proc = os.path.join(merged, 'proc')
    _mount('proc', proc, 'proc', 'nosuid,nodev,noexec')
    for path in [name for name in ('sys', 'sysrq-trigger') if os.path.exists(os.path.join(proc, name))]:
        _mount(os.path.join(proc, path), os.path.join(proc, path), flags=['--bind'])
        _mount('none', os.path.join(proc, path), options='remount,bind,ro')
    _mount('sysfs', os.path.join(merged, 'sys'), 'sysfs', 'ro,nosuid,nodev,noexec')
    dev = os.path.join(merged, 'dev')
    _mount('tmpfs', dev, 'tmpfs', 'mode=0755,nosuid')
    for name in DEVICES:
        open(os.path.join(dev, name), 'w').close()
        _mount('/dev/' + name, os.path.join(dev, name), flags=['--bind'])
    # systemd writes its status to /dev/console: this host's boot log.
    open(os.path.join(dev, 'console'), 'w').close()
    _mount(config['console'], os.path.join(dev, 'console'), flags=['--bind'])
    for name in ('pts', 'shm'):
        os.mkdir(os.path.join(dev, name))
    _mount('devpts', os.path.join(dev, 'pts'), 'devpts', 'newinstance,ptmxmode=0666,mode=0620')
    os.symlink('pts/ptmx', os.path.join(dev, 'ptmx'))
    _mount('tmpfs', os.path.join(dev, 'shm'), 'tmpfs', 'mode=1777,nosuid,nodev')
    for name, target in (('fd', '/proc/self/fd'), ('stdin', '/proc/self/fd/0'), ('stdout', '/proc/self/fd/1'),
                         ('stderr', '/proc/self/fd/2')):
        os.symlink(target, os.path.join(dev, name))
    # The state directory (this upper layer among others) is on the machine's root: out of sight inside.
    hidden = os.path.join(merged, config['state_root'].lstrip('/'))
    if os.path.isdir(hidden):
        _mount('tmpfs', hidden, 'tmpfs', 'ro,mode=0755')
    for path in config['shares']:
        inside = os.path.join(merged, path.lstrip('/'))
        os.makedirs(inside, exist_ok=True)
        _mount(path, inside, flags=['--bind'])
    os.chdir(merged)
    libc = _libc()
    if libc.syscall(155, b'.', b'.') != 0:  # pivot_root(2) on x86_64: the old root stacks under the new one
        raise OSError(ctypes.get_errno(), 'pivot_root')
    if libc.umount2(b'.', 2) != 0:  # MNT_DETACH: the machine's root is out of this namespace
        raise OSError(ctypes.get_errno(), 'umount2')
    os.chdir('/')
    problems = isolation_problems(config)
    if problems:
        print('contained_host %s: refusing to start systemd: %s' % (config['name'], '; '.join(problems)), flush=True)
        sys.exit(REFUSED)
    print('contained_host %s: isolated (overlay root, fresh /tmp /var/tmp /run, own namespaces): starting systemd'
          % config['name'], flush=True)
    os.execve(SYSTEMD, [SYSTEMD, '--unit=' + TARGET, '--log-target=console', '--show-status=false'],
              # container: systemd skips what only a machine does; the cgroup v2 hierarchy only, below this
              # host's own cgroup (a container reads its "kernel command line" from this variable).
              {'container': 'zdt-contained', 'SYSTEMD_PROC_CMDLINE': 'systemd.unified_cgroup_hierarchy=1',
               'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
               'LANG': 'C.UTF-8'})


class ContainedHost:
    """One contained systemd host: its state is ``<state_root>/<name>/``."""

    def __init__(self, state_root, name, netns=None, shares=(), python='/usr/bin/python3'):
        self.state_root = os.path.abspath(state_root)
        self.name = name
        self.dir = os.path.join(self.state_root, name)
        self.upper = os.path.join(self.dir, 'upper')
        self.netns = netns
        self.shares = [os.path.abspath(path) for path in shares]
        self.python = python
        # Named after the state directory too: two test runs on one machine never share a cgroup.
        self.cgroup = os.path.join(CGROUP_ROOT, 'zdt-contained-%s-%s'
                                   % (name, hashlib.sha256(self.state_root.encode()).hexdigest()[:8]))
        # Ansible's ansible_python_interpreter for this host (ansible_connection: local).
        self.wrapper = os.path.join(self.dir, 'python')

    # ---- state ----
    def _path(self, name):
        return os.path.join(self.dir, name)

    def _running(self, record):
        """The pid a record (init.json, launcher.json: pid and start time) names while that process runs, else None."""
        try:
            with open(self._path(record), encoding='utf-8') as handle:
                process = json.load(handle)
        except (OSError, ValueError):
            return None
        return process['pid'] if _start_time(process['pid']) == process['start_time'] else None

    def pid(self):
        """The host's PID 1 (as the machine numbers it) while it runs, else None."""
        return self._running('init.json')

    def log_tail(self, lines=30):
        try:
            with open(self._path('boot.log'), encoding='utf-8', errors='replace') as handle:
                return ''.join(handle.readlines()[-lines:])
        except OSError:
            return ''

    # ---- the root ----
    def _seed(self):
        """First boot: this host's identity and the masks, written into the upper layer only."""
        etc = os.path.join(self.upper, 'etc')
        units = os.path.join(etc, 'systemd', 'system')
        os.makedirs(units, exist_ok=True)
        with open(os.path.join(etc, 'hostname'), 'w', encoding='utf-8') as handle:
            handle.write(self.name + '\n')
        with open(os.path.join(etc, 'machine-id'), 'w', encoding='utf-8') as handle:
            handle.write(secrets.token_hex(16) + '\n')
        masked = set(KERNEL_UNITS)
        for wants in os.listdir('/etc/systemd/system'):
            if wants.endswith(('.wants', '.requires')) and os.path.isdir(os.path.join('/etc/systemd/system', wants)):
                masked.update(os.listdir(os.path.join('/etc/systemd/system', wants)))
        for name in sorted(masked):
            os.symlink('/dev/null', os.path.join(units, name))
        generators = os.path.join(etc, 'systemd', 'system-generators')
        os.makedirs(generators, exist_ok=True)
        for directory in GENERATOR_DIRS:
            for name in (os.listdir(directory) if os.path.isdir(directory) else []):
                if not os.path.lexists(os.path.join(generators, name)):
                    os.symlink('/dev/null', os.path.join(generators, name))
        with open(os.path.join(units, TARGET), 'w', encoding='utf-8') as handle:
            handle.write('[Unit]\nDescription=zdt.bluegreen contained test host\nRequires=multi-user.target\n'
                         'After=multi-user.target\nAllowIsolate=yes\n')
        with open(self._path('masked.json'), 'w', encoding='utf-8') as handle:
            json.dump(sorted(masked), handle)

    def _write_wrapper(self):
        path = self.wrapper
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write('#!/bin/sh\n# Python inside contained host %s (its PID 1 from init.json).\n'
                         'pid=$(sed -n \'s/.*"pid": *\\([0-9]*\\).*/\\1/p\' %s) && [ -n "$pid" ] || '
                         '{ echo "contained host %s is not running" >&2; exit 1; }\n'
                         'exec nsenter -t "$pid" -m -u -i -n -p -C -- %s "$@"\n'
                         % (self.name, self._path('init.json'), self.name, self.python))
        os.chmod(path, 0o755)

    # ---- boot and power-off ----
    def boot(self, timeout=60):
        """Boot (or boot again) and wait until systemd reports running; raises with the log when it refuses or fails."""
        if self.pid():
            return False
        for share in self.shares:
            if (self.state_root + '/').startswith(share.rstrip('/') + '/'):
                raise ContainedHostError('share %s holds the state directory %s: the host would see its own upper layer'
                                         % (share, self.state_root))
        for path in ('upper', 'work', 'merged'):
            os.makedirs(self._path(path), exist_ok=True)
        if not os.path.exists(self._path('masked.json')):
            self._seed()
        # The launcher's namespaces (the machine's: it runs outside any host): the host may share none of them.
        outside_ns = {kind: [os.stat('/proc/self/ns/' + kind).st_ino] for kind in NAMESPACES}
        config = {'name': self.name, 'merged': self._path('merged'), 'upper': self.upper, 'work': self._path('work'),
                  'state_root': self.state_root, 'shares': self.shares, 'outside_ns': outside_ns,
                  'console': self._path('boot.log')}
        with open(self._path('config.json'), 'w', encoding='utf-8') as handle:
            json.dump(config, handle)
        os.makedirs(self.cgroup, exist_ok=True)
        argv = ['unshare', '--pid', '--fork', '--mount', '--uts', '--ipc', '--cgroup', '--propagation', 'private', '--',
                sys.executable, '-m', 'zdt_lab.contained_host', '_init', self._path('config.json')]
        if self.netns:
            argv = ['nsenter', '--net=/run/netns/' + self.netns, '--'] + argv

        def enter_cgroup():
            with open(os.path.join(self.cgroup, 'cgroup.procs'), 'w', encoding='utf-8') as handle:
                handle.write(str(os.getpid()))

        with open(self._path('boot.log'), 'ab') as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=enter_cgroup)
        with open(self._path('launcher.json'), 'w', encoding='utf-8') as handle:
            json.dump({'pid': proc.pid, 'start_time': _start_time(proc.pid)}, handle)
        deadline = time.monotonic() + timeout
        init = None
        while init is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                self._reap(proc)
                self.remove_cgroups()
                raise ContainedHostError('contained host %s did not start (launcher status %s):\n%s'
                                         % (self.name, proc.returncode, self.log_tail()))
            try:
                with open('/proc/%d/task/%d/children' % (proc.pid, proc.pid), encoding='utf-8') as handle:
                    children = [int(pid) for pid in handle.read().split()]
            except OSError:
                children = []
            if children:
                init = children[0]
            else:
                time.sleep(0.02)
        with open(self._path('init.json'), 'w', encoding='utf-8') as handle:
            json.dump({'pid': init, 'start_time': _start_time(init)}, handle)
        self._write_wrapper()
        state = ''
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._reap(proc)
                self.remove_cgroups()
                raise ContainedHostError('contained host %s stopped while booting (launcher status %s):\n%s'
                                         % (self.name, proc.returncode, self.log_tail()))
            # Until systemd runs, PID 1 is the launcher's init (no systemctl to ask).
            if self._comm(init) == 'systemd':
                state = self.command(['systemctl', 'is-system-running'], check=False).stdout.strip()
                if state in ('running', 'degraded'):
                    break
            time.sleep(0.2)
        if state != 'running':
            failed = self.command(['systemctl', '--failed', '--no-legend', '--plain'], check=False).stdout if self.pid() else ''
            raise ContainedHostError('contained host %s: systemd is %r after %ss; failed units:\n%s\n%s'
                                     % (self.name, state or 'not up', timeout, failed, self.log_tail()))
        return True

    @staticmethod
    def _comm(pid):
        try:
            with open('/proc/%d/comm' % pid, encoding='utf-8') as handle:
                return handle.read().strip()
        except OSError:
            return None

    @staticmethod
    def _reap(proc):
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def command(self, argv, check=True, timeout=60, **kwargs):
        """Run argv inside the host (its mount, UTS, IPC, network, pid and cgroup namespaces)."""
        pid = self.pid()
        if not pid:
            raise ContainedHostError('contained host %s is not running' % self.name)
        return subprocess.run(['nsenter', '-t', str(pid), '-m', '-u', '-i', '-n', '-p', '-C', '--'] + list(argv),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=check,
                              timeout=timeout, **kwargs)

    def poweroff(self, timeout=60):
        """systemctl poweroff, wait until PID 1 is gone (SIGKILL to it, by pid, after timeout), remove its cgroups."""
        pid = self.pid()
        killed = False
        if pid:
            self.command(['systemctl', 'poweroff', '--no-block'], check=False)
            deadline = time.monotonic() + timeout
            while self.pid() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.pid():
                os.kill(pid, signal.SIGKILL)  # PID 1 of its namespace: the kernel ends every process in it
                killed = True
                while self.pid():
                    time.sleep(0.05)
        launcher = self._running('launcher.json')
        deadline = time.monotonic() + 10
        while launcher and _start_time(launcher) and time.monotonic() < deadline:
            try:
                os.waitpid(launcher, os.WNOHANG)  # our child when this process booted it
            except ChildProcessError:
                pass
            time.sleep(0.05)
            launcher = self._running('launcher.json')
        return {'was_running': bool(pid), 'killed': killed, 'cgroups_removed': self.remove_cgroups()}

    def remove_cgroups(self):
        """Remove this host's cgroup directory and everything systemd created below it (all empty once it is off)."""
        removed = 0
        if not os.path.isdir(self.cgroup):
            return removed
        for directory, _subdirs, _files in sorted(os.walk(self.cgroup), key=lambda entry: -entry[0].count('/')):
            with open(os.path.join(directory, 'cgroup.procs'), encoding='utf-8') as handle:
                left = handle.read().split()
            if left:
                raise ContainedHostError('cgroup %s still holds processes %s' % (directory, left))
            os.rmdir(directory)
            removed += 1
        return removed

    def destroy(self):
        """Power off when running, then delete the overlay and every file of this host."""
        result = self.poweroff()
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        return result


def main(argv=None):
    """tools/contained_hosts.py; ``_init CONFIG`` is the launcher's own step inside the new namespaces."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['_init']:
        _init(argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--dir', required=True, help='state directory (one subdirectory per host)')
    parser.add_argument('--python', default='/usr/bin/python3', help='interpreter the wrapper runs inside the host')
    sub = parser.add_subparsers(dest='action', required=True)
    boot = sub.add_parser('boot', help='boot hosts (again), each in network namespace --netns-prefix + name')
    boot.add_argument('--netns-prefix', default='zdt-')
    boot.add_argument('--share', action='append', default=[], help='machine path bind-mounted at the same path')
    boot.add_argument('--timeout', type=float, default=60)
    boot.add_argument('hosts', nargs='+')
    for action in ('poweroff', 'destroy'):
        sub.add_parser(action).add_argument('hosts', nargs='+')
    run = sub.add_parser('run', help='run a command inside a host')
    run.add_argument('host')
    run.add_argument('argv', nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    result = {}
    if args.action == 'run':
        proc = ContainedHost(args.dir, args.host).command(args.argv[1:] if args.argv[:1] == ['--'] else args.argv,
                                                          check=False)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        return proc.returncode
    for name in args.hosts:
        if args.action == 'boot':
            host = ContainedHost(args.dir, name, netns=args.netns_prefix + name, shares=args.share, python=args.python)
            result[name] = {'booted': host.boot(timeout=args.timeout), 'pid': host.pid(), 'python': host.wrapper}
        else:
            result[name] = getattr(ContainedHost(args.dir, name), args.action)()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
