#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: release_artifact
short_description: Turn a release artifact (tarball, zip or directory) into one canonical tarball
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - Reads O(src), a C(.tar.gz), C(.tgz) or C(.zip) file or a directory, and writes O(dest), a gzip'd tar of the
    release with one top-level directory stripped (when every member of an archive sits inside one), entries
    sorted, owner root and no set-id bits. Links inside a directory are followed.
  - Refuses, naming the member, what could escape the release directory when unpacked (absolute paths, C(..), links
    pointing outside) and device files; nothing is written then.
  - The output is deterministic, so O(dest) is rewritten (and C(changed)) only when the release differs.
  - The app_release role runs it on the controller after fetching and verifying the artifact, so app hosts only
    unpack a tarball they received from the controller.
options:
  src:
    description: The artifact as fetched.
    type: path
    required: true
  dest:
    description: Where to write the canonical tarball.
    type: path
    required: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reads and checks the artifact and reports whether O(dest) would change; writes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
'''

EXAMPLES = r'''
- name: Canonical tarball of the release
  zdt.bluegreen.release_artifact:
    src: /var/cache/zdt/shop-1.10.0.zip
    dest: /var/cache/zdt/shop-1.10.0.canonical.tar.gz
  delegate_to: localhost
'''

RETURN = r'''
kind:
  description: What O(src) was.
  returned: success
  type: str
  sample: tar.gz
stripped:
  description: The top-level directory that was stripped, or null.
  returned: success
  type: str
  sample: shop-1.10.0
files:
  description: Number of files in the release.
  returned: success
  type: int
sha256:
  description: SHA-256 of the canonical tarball.
  returned: success
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.zdt.bluegreen.plugins.module_utils.app_artifact import normalize
from ansible_collections.zdt.bluegreen.plugins.module_utils.errors import ZdtError


def main():
    module = AnsibleModule(
        argument_spec=dict(src=dict(type='path', required=True), dest=dict(type='path', required=True)),
        supports_check_mode=True,
    )
    try:
        result = normalize(module.params['src'], module.params['dest'], check_mode=module.check_mode)
    except ZdtError as exc:
        module.fail_json(msg=to_native(exc))
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot write %s: %s' % (module.params['dest'], to_native(exc)))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
