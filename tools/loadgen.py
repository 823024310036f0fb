#!/usr/bin/env python
"""Load generator and lost-write verifier: run, verify, summary (the code is zdt_lab.loadgen).

    .venv/bin/python tools/loadgen.py run --url http://127.0.0.1:8000 --rate 200 --duration 60 --report load.json
    .venv/bin/python tools/loadgen.py verify --report load.json --db-name app
    .venv/bin/python tools/loadgen.py summary --report load.json
"""
import sys

from zdt_lab.loadgen import main

if __name__ == '__main__':
    sys.exit(main())
