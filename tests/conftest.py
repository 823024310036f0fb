"""Make the collection importable as ansible_collections.zdt.bluegreen, and the tools and test helpers importable."""
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (os.path.join(REPO_ROOT, '.collections'), os.path.join(REPO_ROOT, 'tools'), os.path.join(REPO_ROOT, 'tests')):
    if path not in sys.path:
        sys.path.insert(0, path)
