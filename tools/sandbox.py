#!/usr/bin/env python
"""The local sandbox stack: start, stop, status, env, ports (the code is zdt_lab.sandbox).

    .venv/bin/python tools/sandbox.py [--root DIR] [--any-ports] [--log-bin] start|stop|status|env|ports [mariadb] [replica] [haproxy]
"""
import sys

from zdt_lab.sandbox import main

if __name__ == '__main__':
    sys.exit(main())
