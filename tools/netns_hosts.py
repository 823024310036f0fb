#!/usr/bin/env python
"""Network namespaces as test hosts for the multihost molecule scenario (the code is zdt_lab.netns).

    .venv/bin/python tools/netns_hosts.py --dir DIR [--python PYTHON] up db lb1 blue1 blue2 green1 green2
    .venv/bin/python tools/netns_hosts.py --dir DIR down
"""
import sys

from zdt_lab.netns import main

if __name__ == '__main__':
    sys.exit(main())
