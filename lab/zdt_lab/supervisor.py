"""The collection's pid-file supervisor, roles/supervisor/files/zdt_supervise.py, imported from its place in the role.

The supervisor ships with the collection and runs standalone on the hosts (standard library only), so it cannot
import this package; this package imports it instead.  The sandbox and the hosts thereby share one process
start-time check (``start_time_of``: is this pid still the process that was started?) and one pid-file record.
"""
import importlib.util
import os

from zdt_lab import REPO_ROOT

PATH = os.path.join(REPO_ROOT, 'roles', 'supervisor', 'files', 'zdt_supervise.py')


def _load(path):
    spec = importlib.util.spec_from_file_location('zdt_supervise', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


zdt_supervise = _load(PATH)
