"""The lab around the zdt.bluegreen collection: the code that tests, benchmarks, the demo and the molecule
scenarios share.  It is not part of the collection: galaxy.yml's build_ignore keeps lab/ out of the artifact.

``make bootstrap`` makes it importable in the project's venv: a .pth file in the venv's site-packages puts lab/
(this package) and .collections/ (the collection, as ``ansible_collections.zdt.bluegreen``) on the sys.path of
every process of .venv/bin/python, including those the multihost scenario starts inside network namespaces
through its interpreter wrappers.  The command-line scripts in tools/ are thin entry points into it.

- ``sandbox``: private MariaDB (and a replica of it), HAProxy and application processes, started and stopped by pid file;
- ``loadgen``: the load generator and lost-write verifier;
- ``sync_races``: writer threads racing a sync with an exact model of every acknowledged write, for the sync tests;
- ``replica_lag``: a replica's lag from a heartbeat of the lab's own, and whether it holds the primary's data;
- ``demo``: ``make demo`` (the upgrade under load) and its report;
- ``netns``: network namespaces as hosts for the multihost scenario;
- ``checks``: what the molecule verifiers check on the stack a scenario left;
- ``lb``: the sandbox HAProxy in front of three ``http_backend`` processes (one of them answering 500 to one request
  in twenty), for the HAProxy integration tests;
- ``http_backend``, ``unix_socket_server``: small servers for tests and benchmarks;
- ``supervisor``: the collection's own pid-file supervisor (roles/supervisor/files/zdt_supervise.py), imported
  from its place in the role, so the sandbox and the hosts share one process start-time check.
"""
import os

# The repository (== collection) root: lab/zdt_lab/__init__.py is two directories below it.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
