# -*- coding: utf-8 -*-
# Copyright: zdt.bluegreen developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for a backfill running as an async job, showing its progress (see the module's documentation).

An action plugin, because it runs on the controller for as long as the backfill takes: one flat loop (no include
nesting, whatever the number of rounds) over ``async_status`` and, every ``progress_interval``, ``mysql_sync_info``,
whose progress it prints as it goes (on the terminal; ansible-runner and AWX record the line as a job event).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import shlex
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.zdt.bluegreen.plugins.module_utils.sync_state import describe_progress

display = Display()

ARGUMENT_SPEC = dict(
    jid=dict(type='str', required=True),
    migration=dict(type='raw', required=True),
    login=dict(type='dict', default={}),
    poll=dict(type='float', default=1.0),
    progress_interval=dict(type='float', default=10.0),
    timeout=dict(type='float', default=21600.0),
    lock_name=dict(type='str'),
    lock_token=dict(type='str', no_log=False),
)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True

    def _module(self, name, args, task_vars):
        return self._execute_module(module_name=name, module_args=args, task_vars=task_vars)

    def _job(self, path):
        """The async job's state from its results file, read with one shell command (a round costs milliseconds, not a
        module run): {finished: False} while it runs, its module result once it finished, {failed, msg} when gone.

        The async wrapper writes {"started": 1, "finished": 0, ...} when the job starts and replaces it with the
        module's result when it ends - the same file ansible.builtin.async_status reads."""
        out = self._low_level_execute_command('cat %s' % shlex.quote(path), sudoable=True)
        if out.get('rc') != 0:
            return dict(failed=True, msg='its results file %s cannot be read: %s' % (path, (out.get('stderr') or '').strip()))
        text = out.get('stdout') or ''
        if not text.strip():
            return dict(finished=False)   # the wrapper has not written it yet
        try:
            data = json.loads(text)
        except ValueError:
            return dict(finished=False)   # being rewritten right now
        if 'started' in data:
            return dict(finished=bool(data.get('finished')), failed=bool(data.get('failed')), msg=data.get('msg'))
        data['finished'] = True
        return data

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if args['poll'] <= 0 or args['progress_interval'] <= 0 or args['timeout'] <= 0:
            raise AnsibleActionFail('poll, progress_interval and timeout must be greater than 0')
        login = dict(args['login'])
        migration_id = args['migration'].get('id', '?') if isinstance(args['migration'], dict) else '?'
        async_dir = self._remote_expand_user(self.get_shell_option('async_dir', default='~/.ansible_async'))
        results_file = self._connection._shell.join_path(async_dir, args['jid'])
        start = time.monotonic()
        last_report = None
        polls = 0
        while True:
            polls += 1
            status = self._job(results_file)
            if status.get('finished'):
                break
            if status.get('failed'):
                raise AnsibleActionFail('the backfill job %s of migration %s is gone: %s' % (args['jid'], migration_id, status.get('msg')))
            now = time.monotonic()
            if last_report is None or now - last_report >= args['progress_interval']:
                last_report = now
                info = self._module('zdt.bluegreen.mysql_sync_info', dict(login, migration=args['migration']), task_vars)
                if info.get('failed'):
                    raise AnsibleActionFail('reading the backfill progress failed: %s' % info.get('msg'))
                display.display('%s, after %ds (%d looks at the job)' % (describe_progress(migration_id, info['sync']), now - start, polls))
                if any(e['backfill']['state'] == 'interrupted' for e in info['sync']):
                    # the checkpoint says "running" but no session holds the migration's backfill lock: the job died
                    raise AnsibleActionFail('the backfill job %s of migration %s was killed: its checkpoint stopped at %s; rerun '
                                            'to resume from it' % (args['jid'], migration_id, describe_progress(migration_id, info['sync'])))
                if args['lock_token']:
                    beat = self._module('zdt.bluegreen.run_lock', dict(login, name=args['lock_name'] or 'zdt.bluegreen',
                                                                       token=args['lock_token'], state='heartbeat'), task_vars)
                    if beat.get('failed'):
                        raise AnsibleActionFail(beat.get('msg'))
            if now - start >= args['timeout']:
                raise AnsibleActionFail('the backfill of migration %s did not finish within %ds; it still runs as job %s and holds '
                                        'the migration lock: let it finish, then rerun' % (migration_id, args['timeout'], args['jid']))
            time.sleep(args['poll'])
        self._low_level_execute_command('rm -f %s' % shlex.quote(results_file), sudoable=True)
        for key in ('ansible_job_id', 'finished', 'started', 'results_file', 'invocation'):
            status.pop(key, None)
        result.update(status)
        result.update(polls=polls, waited=round(time.monotonic() - start, 3))
        if status.get('failed'):
            result['msg'] = 'the backfill of migration %s failed: %s' % (migration_id, status.get('msg'))
        return result
