# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A user's own haproxy.cfg, read and checked for what the upgrade needs, never rewritten. No Ansible import, no I/O.

The upgrade needs, from the files HAProxy loads:

- a stats socket at ``level admin`` at the path the switch talks to (HAProxy's default level is ``user``);
- a ``server-state-file`` (global) at the path the switch writes, loaded by the backend
  (``load-server-state-from-file global``, in the backend or in the defaults section it inherits);
- in the backend, one ``server`` line per app host, named as the inventory names it, at its address and port;
  no other server (it would take traffic whichever color is live).

Global settings that are missing can be given by a separate file loaded after the user's
(:func:`extra_global_lines`); everything else is a problem naming the line to add or change.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import shlex

SECTIONS = ('global', 'defaults', 'frontend', 'backend', 'listen', 'peers', 'resolvers', 'userlist', 'program',
            'http-errors', 'ring', 'mailers', 'cache', 'fcgi-app')


def _words(line):
    try:
        return shlex.split(line, comments=True, posix=True)
    except ValueError:   # an unbalanced quote: HAProxy refuses it too; take the words as they are
        return line.split('#', 1)[0].split()


def parse(text, source='haproxy.cfg'):
    """[{'kind', 'name', 'from', 'line', 'source', 'lines': [(line number, [words])]}] in file order."""
    sections = []
    current = None
    for number, raw in enumerate(text.splitlines(), start=1):
        words = _words(raw)
        if not words:
            continue
        if words[0] in SECTIONS and not raw[:1].isspace():
            name = words[1] if len(words) > 1 and words[1] != 'from' else ''
            parent = words[words.index('from') + 1] if 'from' in words[:-1] else None
            current = {'kind': words[0], 'name': name, 'from': parent, 'line': number, 'source': source, 'lines': []}
            sections.append(current)
        elif current is not None:
            current['lines'].append((number, words))
    return sections


def _settings(section, *keyword):
    """[(line number, words)] of the section's lines that start with the keyword words."""
    size = len(keyword)
    return [(n, w) for n, w in section['lines'] if tuple(w[:size]) == keyword]


def _option_after(words, name):
    return words[words.index(name) + 1] if name in words[:-1] else None


def stats_sockets(sections):
    """[{'path', 'level', 'line', 'source'}] of every global ``stats socket``; level defaults to user (HAProxy's)."""
    found = []
    for section in sections:
        if section['kind'] != 'global':
            continue
        for number, words in _settings(section, 'stats', 'socket'):
            if len(words) < 3:
                continue
            path = words[2]
            for prefix in ('unix@',):
                if path.startswith(prefix):
                    path = path[len(prefix):]
            found.append({'path': path, 'level': _option_after(words, 'level') or 'user', 'line': number,
                          'source': section['source']})
    return found


def _global_value(sections, keyword):
    for section in sections:
        if section['kind'] == 'global':
            for number, words in _settings(section, keyword):
                if len(words) > 1:
                    return words[1], number, section['source']
    return None


def _backend(sections, backend):
    for section in sections:
        if section['kind'] in ('backend', 'listen') and section['name'] == backend:
            return section
    return None


def _inherited_defaults(sections, backend_section):
    """The defaults section the backend takes its settings from: the one its ``from`` names, else the last one before
    it (HAProxy 2.6)."""
    if backend_section['from']:
        for section in sections:
            if section['kind'] == 'defaults' and section['name'] == backend_section['from']:
                return section
        return None
    last = None
    for section in sections:
        if section is backend_section:
            return last
        if section['kind'] == 'defaults' and section['source'] == backend_section['source']:
            last = section
    return last


def _server_line(server, options):
    return 'server %s %s:%s %s' % (server['name'], server['address'], server['port'], options)


def check(sections, backend, servers, admin_socket, state_file, server_options='check'):
    """What the upgrade needs from the configuration, checked.

    servers: [{name, address, port}] of every app host (every color). Returns {'problems': [...], 'extra': [global
    lines a separate file can give], 'servers': {name: line}}. A problem names the file, the line to add or change,
    and where."""
    problems, extra = [], []

    sockets = stats_sockets(sections)
    ours = [s for s in sockets if s['path'] == admin_socket]
    if ours and ours[0]['level'] != 'admin':
        s = ours[0]
        problems.append('%s line %d: the stats socket %s is at level %s; the switch needs level admin: add "level admin" '
                        'to that line (stats socket %s mode 600 level admin)' % (s['source'], s['line'], admin_socket,
                                                                                 s['level'], admin_socket))
    elif not ours:
        extra.append('stats socket %s mode 600 level admin expose-fd listeners' % admin_socket)

    state = _global_value(sections, 'server-state-file')
    if state is None:
        extra.append('server-state-file %s' % state_file)
    elif state[0] != state_file:
        where_state, current = '%s line %d' % (state[2], state[1]), state[0]
        problems.append('%s: server-state-file is %s, but the switch writes %s: set load_balancer_state_file to %s (or '
                        'change that line to "server-state-file %s")' % (where_state, current, state_file, current, state_file))

    section = _backend(sections, backend)
    if section is None:
        names = ', '.join('%s %s' % (s['kind'], s['name']) for s in sections if s['kind'] in ('backend', 'listen'))
        problems.append('no backend %s in the configuration (it has: %s); add it with one server line per app host: %s'
                        % (backend, names or 'none', '; '.join(_server_line(s, server_options) for s in servers)))
        return {'problems': problems, 'extra': extra, 'servers': {}}

    where = '%s line %d' % (section['source'], section['line'])
    loads = _settings(section, 'load-server-state-from-file')
    if not loads:
        parent = _inherited_defaults(sections, section)
        loads = _settings(parent, 'load-server-state-from-file') if parent else []
    if not loads:
        problems.append('backend %s (%s) does not load the server-state file: add "load-server-state-from-file global" '
                        'to it or to its defaults section' % (backend, where))
    elif loads[-1][1][1:2] != ['global']:
        problems.append('backend %s: "%s" (line %d) must be "load-server-state-from-file global" (the file the switch '
                        'writes)' % (backend, ' '.join(loads[-1][1]), loads[-1][0]))

    lines = {}
    for number, words in _settings(section, 'server'):
        if len(words) >= 3:
            lines[words[1]] = (number, words)
    wanted = dict((s['name'], s) for s in servers)
    for name in sorted(wanted):
        server = wanted[name]
        address = '%s:%s' % (server['address'], server['port'])
        if name not in lines:
            problems.append('backend %s (%s) has no server %s: add the line "%s"'
                            % (backend, where, name, _server_line(server, server_options)))
        elif lines[name][1][2] != address:
            problems.append('backend %s, line %d: server %s is at %s, the inventory says %s: change it to "%s"'
                            % (backend, lines[name][0], name, lines[name][1][2], address,
                               ' '.join(lines[name][1][:2] + [address] + lines[name][1][3:])))
    for name in sorted(set(lines) - set(wanted)):
        problems.append('backend %s, line %d: server %s is no app host of the inventory (it would take traffic whichever '
                        'color is live): remove it, or add the host to a color\'s group' % (backend, lines[name][0], name))
    return {'problems': problems, 'extra': extra,
            'servers': dict((name, ' '.join(words)) for name, (_n, words) in lines.items())}


def extra_config(lines):
    """The separate file HAProxy loads after the user's: a global section with the settings theirs lacks."""
    text = ('# zdt.bluegreen: global settings the upgrade needs that the main configuration does not set.\n'
            '# HAProxy loads this file after it (a second -f); rewritten by the load_balancer role.\n')
    if lines:
        text += 'global\n' + ''.join('    %s\n' % line for line in lines)
    return text
