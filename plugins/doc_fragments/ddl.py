# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # How DDL waits for metadata locks (module_args.DDL_SPEC).
    DOCUMENTATION = r'''
options:
  lock_wait_timeout:
    description:
      - Session C(lock_wait_timeout) in seconds for every DDL statement the module runs; how long the site's queries can
        queue behind one attempt to take a metadata lock. At least 1.
      - A statement that times out is retried with exponential backoff and jitter; after the last retry the task fails
        naming the session that holds the lock, when the login user may see it (C(PROCESS) privilege).
    type: int
    default: 1
  ddl_retries:
    description:
      - How many times a DDL statement that timed out waiting for a metadata lock is retried. At least 0.
    type: int
    default: 10
'''
