# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  socket:
    description:
      - The HAProxy runtime API (stats socket) to talk to, at C(level admin).
      - A unix socket path (optionally prefixed with C(unix@)) or C(ipv4@host:port).
    type: str
    required: true
  backend:
    description:
      - Name of the HAProxy backend whose servers are managed. A backend that does not exist is an error.
    type: str
    required: true
'''
