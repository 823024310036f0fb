#!/usr/bin/env python
"""Run `ansible-test sanity` offline-capable, on a copy of the collection's files.

ansible-test needs the collection under a path ending in ansible_collections/zdt/bluegreen and
bootstraps pip from a script it would download; ensurepip serves the same purpose locally.
The copy holds exactly what git would ship (tracked plus untracked-but-not-ignored files), so
sandbox state and venvs never reach the checks.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_pip_bootstrap():
    import ansible_test  # pylint: disable=import-outside-toplevel
    source = os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')
    with open(source, encoding='utf-8') as handle:
        version = re.search(r"pip='([0-9.]+)'", handle.read()).group(1)
    path = os.path.expanduser('~/.ansible/test/cache/get_pip_%s.py' % version.replace('.', '_'))
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write('import ensurepip\nensurepip.bootstrap()\n')


def copy_collection(dest):
    files = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=REPO_ROOT,
                           stdout=subprocess.PIPE, check=True).stdout.decode().split('\0')
    if os.path.exists(dest):
        shutil.rmtree(dest)
    for rel in filter(None, files):
        src = os.path.join(REPO_ROOT, rel)
        if not os.path.isfile(src) or os.path.islink(src):
            continue
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target)
    # ansible-test lists a collection's files through git when it is a repository.
    subprocess.run(['git', 'init', '-q'], cwd=dest, check=True)
    subprocess.run(['git', 'add', '-A'], cwd=dest, check=True)


def main():
    ensure_pip_bootstrap()
    # A directory of its own per run, so concurrent runs never share one copy.
    base = tempfile.mkdtemp(prefix='zdt-sanity-')
    try:
        dest = os.path.join(base, 'ansible_collections', 'zdt', 'bluegreen')
        copy_collection(dest)
        python = '%d.%d' % sys.version_info[:2]
        argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-test'), 'sanity', '--venv', '--python', python,
                '--color', 'no'] + sys.argv[1:]
        return subprocess.run(argv, cwd=dest, check=False).returncode
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
