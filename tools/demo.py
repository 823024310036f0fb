#!/usr/bin/env python
"""`make demo`: the blue/green upgrade under load on a local sandbox, then a report (the code is zdt_lab.demo).

    .venv/bin/python tools/demo.py [--users N] [--rate R] [--root DIR] [--report-dir DIR] [--replica] [--any-ports]
"""
import sys

from zdt_lab.demo import main

if __name__ == '__main__':
    sys.exit(main())
