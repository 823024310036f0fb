# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server settings and privileges a sync needs, checked before anything changes (no Ansible import).

One function per precondition; each raises DatabaseError naming the setting and the fix.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import DatabaseError
from ansible_collections.zdt.bluegreen.plugins.module_utils.mysql_connection import query


def check_trigger_privileges(conn):
    """With binary logging on, creating triggers needs SUPER or log_bin_trust_function_creators: fail up front."""
    row = query(conn, 'SELECT @@GLOBAL.log_bin, @@GLOBAL.log_bin_trust_function_creators')[0]
    if not int(row[0] or 0) or int(row[1] or 0):
        return
    grants = ' '.join(r[0] for r in query(conn, 'SHOW GRANTS')).upper()
    if re.search(r'GRANT (ALL PRIVILEGES|[^`]*\bSUPER\b)[^`]* ON \*\.\*', grants):
        return
    raise DatabaseError('binary logging is on and the login user has neither SUPER nor does the server set '
                        'log_bin_trust_function_creators=1: the server would refuse to create the sync triggers. '
                        'Grant SUPER (or set log_bin_trust_function_creators=1) and retry')
