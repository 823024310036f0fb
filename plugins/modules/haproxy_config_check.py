#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: haproxy_config_check
short_description: Check a user's own HAProxy configuration for what a blue/green upgrade needs
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - Reads the HAProxy configuration file O(path) (never writes it) and checks what the switch and the drain rely on -
    a stats socket at C(level admin) at O(admin_socket), a C(server-state-file) at O(state_file) loaded by the
    backend (C(load-server-state-from-file global) in O(backend) or in the defaults section it inherits), and in
    O(backend) one C(server) line per app host of O(servers), with its name, address and port, and no other server.
  - Fails, before anything is changed, when something is missing that only the user's file can hold, naming the
    file, the line to add or change and where.
  - A missing stats socket or C(server-state-file) is not a failure - both are global settings that a separate file
    loaded after O(path) can give; RV(extra) lists those lines and RV(extra_config) is that file's text.
options:
  path:
    description:
      - The user's HAProxy configuration file.
    type: path
    required: true
  backend:
    description:
      - The backend (or C(listen) section) whose servers are switched.
    type: str
    required: true
  servers:
    description:
      - Every app host of every color, C({name, address, port}); the server names are the inventory host names.
    type: list
    elements: dict
    required: true
  admin_socket:
    description:
      - The stats socket the switch talks to (a unix socket path).
    type: path
    required: true
  state_file:
    description:
      - The server-state file the switch writes.
    type: path
    required: true
  server_options:
    description:
      - What the lines to add suggest after the address (the messages only).
    type: str
    default: check
attributes:
  check_mode:
    support: full
    description: Reads and checks in check mode too; the module never changes anything.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no difference to show.
seealso:
  - module: zdt.bluegreen.haproxy_swap
'''

EXAMPLES = r'''
- name: Check /etc/haproxy/haproxy.cfg before the upgrade uses it
  zdt.bluegreen.haproxy_config_check:
    path: /etc/haproxy/haproxy.cfg
    backend: app
    servers:
      - {name: app-blue-1, address: 10.0.1.11, port: 8000}
      - {name: app-green-1, address: 10.0.2.11, port: 8000}
    admin_socket: /run/haproxy/admin.sock
    state_file: /var/lib/haproxy/server-state
  register: own_config
'''

RETURN = r'''
problems:
  description: What only the user's file can fix, each naming the line to add or change (the module failed).
  returned: always
  type: list
  elements: str
  sample: ['backend app (/etc/haproxy/haproxy.cfg line 40) has no server app-green-2: add the line "server app-green-2 10.0.2.12:8000 check"']
extra:
  description: The global settings the file lacks that a separate file loaded after it gives.
  returned: always
  type: list
  elements: str
  sample: [stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners]
extra_config:
  description: The text of that separate file (a comment only when nothing is missing).
  returned: always
  type: str
servers:
  description: The server lines of the backend, by server name.
  returned: always
  type: dict
  sample: {app-blue-1: server app-blue-1 10.0.1.11:8000 check}
msg:
  description: The problems, or what the separate file adds.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.zdt.bluegreen.plugins.module_utils.haproxy_config import check, extra_config, parse


def run(module):
    p = module.params
    for index, server in enumerate(p['servers']):
        missing = [key for key in ('name', 'address', 'port') if server.get(key) in (None, '')]
        if missing:
            module.fail_json(msg='servers[%d] needs %s' % (index, ', '.join(missing)))
    try:
        with open(p['path'], encoding='utf-8') as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        module.fail_json(msg='cannot read the HAProxy configuration %s: %s' % (p['path'], to_native(exc)))
    result = check(parse(text, p['path']), p['backend'], p['servers'], p['admin_socket'], p['state_file'],
                   server_options=p['server_options'])
    result['extra_config'] = extra_config(result['extra'])
    if result['problems']:
        module.fail_json(msg='%s lacks what the upgrade needs (nothing was changed): %s'
                         % (p['path'], '; '.join(result['problems'])), **result)
    added = '; a separate file adds: %s' % '; '.join(result['extra']) if result['extra'] else ''
    msg = '%s has what the upgrade needs%s' % (p['path'], added)
    module.exit_json(changed=False, msg=msg, **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            backend=dict(type='str', required=True),
            servers=dict(type='list', elements='dict', required=True),
            admin_socket=dict(type='path', required=True),
            state_file=dict(type='path', required=True),
            server_options=dict(type='str', default='check'),
        ),
        supports_check_mode=True,
    )
    run(module)


if __name__ == '__main__':
    main()
