"""Shared runtime of the zdt.bluegreen sample service (HTTP server, database access, configuration).

A release directory holds ``app.py`` (the version-specific code) next to a copy of this package.
"""
