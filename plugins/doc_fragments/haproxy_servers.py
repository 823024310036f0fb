# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  servers:
    description:
      - The servers of O(backend) the module works on. Give either this or O(colors) and O(color).
    type: list
    elements: str
  colors:
    description:
      - Colors of the backend, each with the list of its server names (as for M(zdt.bluegreen.haproxy_swap)).
    type: dict
  color:
    description:
      - The color in O(colors) whose servers the module works on.
    type: str
'''
