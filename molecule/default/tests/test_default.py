"""Placeholder."""


def test_sandbox_mariadb_listens(host):
    assert host.file('/tmp').is_directory
