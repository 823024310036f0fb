# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # The migration option (module_args.MIGRATION_SPEC).
    DOCUMENTATION = r'''
options:
  migration:
    description:
      - The migration, either the path of its YAML file on the managed host or the migration as a mapping with the same
        content.
      - Its format (C(id), C(description), C(expand), C(sync), C(contract)) is described in the collection's README,
        section "Writing a migration file".
      - The whole file is validated before the module connects; an invalid field fails naming its path, for example
        C(expand[0].create_table.columns[2].type).
    type: raw
    required: true
'''
