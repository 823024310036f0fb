"""Reading the server version (no server)."""
from ansible_collections.zdt.bluegreen.plugins.module_utils import mysql_inspect


def test_server_version_parsing():
    class C(object):
        def __init__(self, v):
            self.v = v

        def cursor(self):
            outer = self

            class Cur(object):
                def __enter__(self):
                    return self

                def __exit__(self, *a):
                    return False

                def execute(self, sql, args=None):
                    assert sql == 'SELECT VERSION()'

                def fetchall(self):
                    return ((outer.v,),)
            return Cur()
    assert mysql_inspect.server_version(C('10.11.19-MariaDB-0+deb12u1'))[:2] == ('mariadb', (10, 11, 19))
    assert mysql_inspect.server_version(C('8.0.36'))[:2] == ('mysql', (8, 0, 36))
