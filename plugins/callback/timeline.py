# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: timeline
type: aggregate
short_description: Write a JSON-lines timeline of plays and tasks
version_added: 0.1.0
author: zdt.bluegreen developers (@zdt)
description:
  - Appends one JSON object per event (playbook, play and task start, task result per host) to a file,
    with wall-clock timestamps, so a report can show how long each phase of an upgrade took and how
    much of it was Ansible's own overhead.
  - Each task record carries the task's name, its role and the file it was defined in, which identify the phase.
requirements:
  - enable in the configuration, for example C(ANSIBLE_CALLBACKS_ENABLED=zdt.bluegreen.timeline).
options:
  path:
    description: File the JSON lines are appended to; nothing is written when it is not set.
    type: path
    env:
      - name: ZDT_TIMELINE_FILE
    ini:
      - section: callback_timeline
        key: path
"""

import json
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    """Record when each play and task started and how each host's result ended."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'zdt.bluegreen.timeline'
    CALLBACK_NEEDS_ENABLED = True
    FIGURE_KEYS = ('backfill', 'verify', 'waited', 'sessions', 'shutdown', 'statements', 'previous', 'current')

    def __init__(self, display=None):
        super().__init__(display=display)
        self._path = None

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self._path = self.get_option('path')

    def _emit(self, event, **fields):
        if not self._path:
            return
        fields.update(event=event, time=time.time())
        with open(self._path, 'a', encoding='utf-8') as handle:
            handle.write(json.dumps(fields, default=str) + '\n')

    def v2_playbook_on_start(self, playbook):
        self._emit('playbook_start', playbook=playbook._file_name)

    def v2_playbook_on_play_start(self, play):
        self._emit('play_start', play=play.get_name())

    def v2_playbook_on_task_start(self, task, is_conditional):
        role = task._role.get_name() if task._role else None
        self._emit('task_start', task=task.get_name(), role=role, path=task.get_path(), action=task.action)

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _result(self, status, result):
        # Figures the modules report about their own work (backfill rate, verify counts, drain wait).
        figures = dict((key, result._result[key]) for key in self.FIGURE_KEYS if key in result._result)
        self._emit('task_result', status=status, host=result._host.get_name(), task=result._task.get_name(),
                   changed=bool(result._result.get('changed', False)), figures=figures)

    def v2_runner_on_ok(self, result):
        self._result('ok', result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result('ignored' if ignore_errors else 'failed', result)

    def v2_runner_on_skipped(self, result):
        self._result('skipped', result)

    def v2_runner_on_unreachable(self, result):
        self._result('unreachable', result)

    def v2_playbook_on_stats(self, stats):
        self._emit('playbook_end')
