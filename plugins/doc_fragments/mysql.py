# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # MySQL/MariaDB connection options: the same names and defaults as community.mysql, plus database.
    DOCUMENTATION = r'''
options:
  login_user:
    description:
      - The username used to authenticate with.
      - When not set, the user from O(config_file) (if any) or the driver's default is used.
    type: str
  login_password:
    description:
      - The password used to authenticate with. Never shown in output or error messages.
    type: str
  login_host:
    description:
      - Host running the database.
      - Ignored when O(login_unix_socket) is set.
    type: str
    default: localhost
  login_port:
    description:
      - Port of the MySQL/MariaDB server. Ignored when O(login_unix_socket) is set.
    type: int
    default: 3306
  login_unix_socket:
    description:
      - The path to a Unix domain socket for local connections.
    type: str
  config_file:
    description:
      - Specify a config file from which user and password are to be read (section C([client])).
      - Used only when the file exists.
    type: path
    default: '~/.my.cnf'
  connect_timeout:
    description:
      - The connection timeout when connecting to the MySQL server, in seconds.
    type: int
    default: 30
  ca_cert:
    description:
      - The path to a Certificate Authority (CA) certificate.
    type: path
    aliases: [ ssl_ca ]
  client_cert:
    description:
      - The path to a client public key certificate.
    type: path
    aliases: [ ssl_cert ]
  client_key:
    description:
      - The path to the client private key.
    type: path
    aliases: [ ssl_key ]
  check_hostname:
    description:
      - Whether to validate the server host name against its TLS certificate.
    type: bool
  database:
    description:
      - Name of the database (schema) the migration applies to.
    type: str
    required: true
requirements:
  - PyMySQL (Python library)
notes:
  - Tested on MariaDB 10.11; the SQL used is also accepted by MySQL 8.0.
'''
