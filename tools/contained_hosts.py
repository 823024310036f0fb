#!/usr/bin/env python
"""Contained systemd hosts: systemd as PID 1 of its own namespaces on an overlay root (the code is zdt_lab.contained_host).

    .venv/bin/python tools/contained_hosts.py --dir DIR boot [--netns-prefix zdt-] [--share PATH] HOST...
    .venv/bin/python tools/contained_hosts.py --dir DIR run HOST -- systemctl status
    .venv/bin/python tools/contained_hosts.py --dir DIR poweroff HOST...   # a reboot is poweroff then boot
    .venv/bin/python tools/contained_hosts.py --dir DIR destroy HOST...    # poweroff, then delete the overlay
"""
import sys

from zdt_lab.contained_host import main

if __name__ == '__main__':
    sys.exit(main())
