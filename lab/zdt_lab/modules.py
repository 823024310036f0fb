"""Run one of the collection's modules the way Ansible runs it: a process fed ANSIBLE_MODULE_ARGS from a file."""
import json
import os
import subprocess
import sys
import tempfile

from zdt_lab import REPO_ROOT


def start_module(name, args, check_mode=False, diff=False):
    """Start plugins/modules/<name>.py with ``args`` without waiting (for kill tests): (Popen, args file to unlink)."""
    module_args = dict(args)
    module_args.update({'_ansible_check_mode': check_mode, '_ansible_diff': diff})
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': module_args}, handle)
    proc = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, 'plugins', 'modules', name + '.py'), handle.name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc, handle.name


def run_module(name, args, check_mode=False, diff=False, timeout=300):
    """Run plugins/modules/<name>.py with ``args``; return its JSON result (AssertionError when it printed none)."""
    proc, args_path = start_module(name, args, check_mode, diff)
    return module_result(name, proc, args_path, timeout)


def module_result(name, proc, args_path, timeout=300):
    """Wait for a module started by :func:`start_module` and return its JSON result (AssertionError when it printed none)."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.unlink(args_path)
    out = stdout.decode(errors='replace')
    try:
        return json.loads(out[out.index('{'):])
    except ValueError:
        raise AssertionError('module %s printed no JSON (rc=%s):\n%s\n%s'
                             % (name, proc.returncode, out, stderr.decode(errors='replace'))) from None
