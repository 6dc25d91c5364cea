#!/usr/bin/python
"""Ansible module lanco_task: a lanco task in the state a playbook wants, through the node's lanco command."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lanco_task
short_description: Start, stop, restart or forget a lanco task
description:
  - Runs the managed node's C(lanco) command line to bring one task of a lanco namespace to the wanted state.
  - The task's record (what C(lanco NS status --json) prints) is returned as the result.
  - C(started) is idempotent. When the task already runs with the same command, limits and labels, nothing
    changes. When it runs with another command, other limits or other labels, the module fails and asks for
    I(state=restarted). It never restarts a task unless asked to.
  - The other options (log, restart policy, environment and so on) take effect when the task starts. They are
    not recorded with the task, so they are not compared with a running one.
  - Never imports lanco's Python package, so the node may run a different lanco version than the controller.
version_added: "0.1.0"
author:
  - lanco developers
options:
  name:
    description: The task's name (1-64 characters of C([A-Za-z0-9_.-]), not starting with C(.) or C(-)).
    type: str
    required: true
  namespace:
    description: The lanco namespace the task belongs to (see M(lanco.lanco.lanco_namespace)).
    type: str
    required: true
  command:
    description:
      - The command and its arguments, one word per item, run without a shell.
      - Required for I(state=started) and I(state=restarted).
    type: list
    elements: str
  state:
    description:
      - C(started) starts the task unless it already runs the same spec.
      - C(stopped) stops it (the stop signal, a grace period, then a kill of the whole task).
      - C(restarted) stops it when it runs, then starts it. This always reports a change.
      - C(absent) stops it when it runs, then forgets its record (C(lanco NS release TASK)).
    type: str
    choices: [started, stopped, restarted, absent]
    default: started
  limits:
    description:
      - Resource limits, each passed as the C(lanco run) option of the same name (C(memory_max) is
        C(--memory-max)). Values are written as on lanco's command line.
    type: dict
    suboptions:
      memory_max:
        description: Hard memory limit (C(512K), C(64M), C(2G), C(max)).
        type: raw
      memory_high:
        description: Memory throttling threshold (cgroup v2).
        type: raw
      memory_low:
        description: Memory kept from reclaim while the host is short of it (cgroup v2).
        type: raw
      memory_swap_max:
        description: Swap on top of the memory (C(0) for none).
        type: raw
      cpu_quota:
        description: Percent of one CPU (C(150) is one and a half).
        type: raw
      cpu_weight:
        description: Relative CPU share, 1-10000.
        type: raw
      cpuset:
        description: CPUs to run on, such as C(0-3,6).
        type: str
      pids_max:
        description: Most processes and threads at once.
        type: raw
      io_weight:
        description: Relative IO share, 1-10000.
        type: raw
      io_read_bps:
        description: Read bytes per second per device, a mapping of device to rate or a list of C(DEV=RATE) items.
        type: raw
      io_write_bps:
        description: Written bytes per second per device, as I(io_read_bps).
        type: raw
  labels:
    description:
      - Labels of the task, each passed as C(--label KEY=VALUE). They are recorded with the task and compared
        like its command. Needs a lanco whose C(run) has C(--label).
    type: dict
  description:
    description: One line about the task, shown by C(lanco NS status) (C(--description)). Needs a lanco whose
      C(run) has C(--description).
    type: str
  log:
    description: The task's log file (C(--log)); by default the namespace's log folder.
    type: path
  keep_log:
    description: Append to an existing log instead of rotating it (C(--keep-log)).
    type: bool
    default: false
  log_max_size:
    description: Let C(lanco logs --rotate) rotate the log once it is over this size (C(--log-max-size)).
    type: str
  log_keep:
    description: Rotated copies of the log kept (C(--log-keep)).
    type: int
  exit_command:
    description: Run C(/bin/sh -c) this command as the owner when the task has ended (C(--exit-command)).
    type: str
  timeout:
    description: Stop the task this long after it started (C(--timeout), such as C(30s), C(5m)).
    type: str
  stop_signal:
    description: The signal C(lanco stop) sends first (C(--stop-signal)).
    type: str
  stop_timeout:
    description: Grace between the stop signal and the kill (C(--stop-timeout)); also used when this module stops
      the task.
    type: str
  restart:
    description: Start the command again when it ends (C(--restart)).
    type: str
    choices: ["no", on-failure, always]
  restart_max:
    description: Restart at most this many times (C(--restart-max)).
    type: int
  restart_delay:
    description: Pause before a restart (C(--restart-delay)).
    type: str
  env:
    description: Environment variables of the task (C(--env K=V) each).
    type: dict
  env_file:
    description: A file of C(K=V) lines (C(--env-file)).
    type: path
  cwd:
    description: The task's working directory (C(--cwd)).
    type: path
  umask:
    description: The task's file mode creation mask, such as C("027") (C(--umask)).
    type: str
  nice:
    description: The task's niceness, -20 to 19 (C(--nice)).
    type: int
  user:
    description: Run the task as this account (C(--user); root only).
    type: str
  group:
    description: Run the task with this group (C(--group); root only).
    type: str
  lanco_path:
    description: The lanco executable on the node; by default C(lanco) found on the PATH.
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - Failures report lanco's own one-line message as C(msg), and its exit code as C(rc).
  - lanco runs no daemon. Each task has a small monitor process of lanco's own while it runs, as any
    C(lanco run) has.
seealso:
  - module: lanco.lanco.lanco_namespace
  - module: lanco.lanco.lanco_info
"""

EXAMPLES = r"""
- name: Run the web server under a 256M memory limit and half a CPU
  lanco.lanco.lanco_task:
    namespace: apps
    name: web
    command: [python3, -m, http.server, "8080"]
    limits:
      memory_max: 256M
      cpu_quota: 50
      pids_max: 64
    labels:
      role: frontend
    restart: on-failure

- name: Change its limits (a running task is never restarted unless asked)
  lanco.lanco.lanco_task:
    namespace: apps
    name: web
    command: [python3, -m, http.server, "8080"]
    limits:
      memory_max: 512M
    state: restarted

- name: Stop it
  lanco.lanco.lanco_task:
    namespace: apps
    name: web
    state: stopped

- name: Stop it and forget its record
  lanco.lanco.lanco_task:
    namespace: apps
    name: web
    state: absent
"""

RETURN = r"""
task:
  description:
    - The task's record as C(lanco NS status --json NAME) prints it (docs/json.md of lanco), after the change.
    - In check mode, the record before the change (null for an unknown task).
    - Null after I(state=absent).
  returned: always
  type: dict
  sample:
    schema_version: 1
    namespace: apps
    name: web
    state: running
    argv: [python3, -m, http.server, "8080"]
    main_pid: 4242
    limits: {memory_max_bytes: 268435456, cpu_quota_percent: 50.0, pids_max: 64}
    labels: {role: frontend}
state:
  description: The task's state in lanco's words (C(running), C(stopped), C(exited), ...), or C(absent).
  returned: always
  type: str
  sample: running
cmd:
  description: The lanco command lines the module ran to change the task, in order (none when nothing changed).
  returned: always
  type: list
  elements: list
rc:
  description: lanco's exit code, on failure.
  returned: failed
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lanco.lanco.plugins.module_utils.lanco_cli import (
    Lanco,
    LancoFailed,
    diff_view,
    find_executable,
    plan,
    unknown_limits,
    wanted_spec,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LIMIT_OPTIONS = {key: {"type": "raw"} for key in (
    "memory_max", "memory_high", "memory_low", "memory_swap_max", "cpu_quota", "cpu_weight", "pids_max",
    "io_weight", "io_read_bps", "io_write_bps")}

ARGUMENT_SPEC: dict[str, Any] = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str", "required": True},
    "command": {"type": "list", "elements": "str"},
    "state": {"type": "str", "default": "started", "choices": ["started", "stopped", "restarted", "absent"]},
    "limits": {"type": "dict", "options": {**LIMIT_OPTIONS, "cpuset": {"type": "str"}}},
    "labels": {"type": "dict"},
    "description": {"type": "str"},
    "log": {"type": "path"},
    "keep_log": {"type": "bool", "default": False},
    "log_max_size": {"type": "str"},
    "log_keep": {"type": "int"},
    "exit_command": {"type": "str"},
    "timeout": {"type": "str"},
    "stop_signal": {"type": "str"},
    "stop_timeout": {"type": "str"},
    "restart": {"type": "str", "choices": ["no", "on-failure", "always"]},
    "restart_max": {"type": "int"},
    "restart_delay": {"type": "str"},
    "env": {"type": "dict"},
    "env_file": {"type": "path"},
    "cwd": {"type": "path"},
    "umask": {"type": "str"},
    "nice": {"type": "int"},
    "user": {"type": "str"},
    "group": {"type": "str"},
    "lanco_path": {"type": "path"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("state", "started", ("command",)), ("state", "restarted", ("command",))])
    params = module.params
    if params.get("limits"):
        params["limits"] = {k: v for k, v in params["limits"].items() if v is not None}
    bad = unknown_limits(params.get("limits"))
    if bad:
        module.fail_json(msg=f"unknown limits: {', '.join(bad)}")
    namespace = params["namespace"]
    try:
        lanco = Lanco(module, find_executable(params.get("lanco_path"), module.get_bin_path))
        try:
            current = lanco.task(namespace, params["name"])
        except LancoFailed:
            # In check mode the namespace may be one an earlier task of the play would have created.
            if not module.check_mode or lanco.namespace(namespace) is not None:
                raise
            current = None
        steps = plan(params["state"], current, params)
    except LancoFailed as failure:
        module.fail_json(msg=failure.msg, rc=failure.rc, cmd=failure.cmd)
    before = diff_view(current)
    if params["state"] == "absent":
        after: dict[str, Any] = {"state": "absent"}
    elif params["state"] == "stopped":
        after = {**before, "state": "stopped"} if steps else before
    else:
        after = {"state": "running", **wanted_spec(params)} if steps else before
    result: dict[str, Any] = {"changed": bool(steps), "cmd": [], "diff": {"before": before, "after": after}}
    try:
        if not module.check_mode:
            for step in steps:
                result["cmd"].append([lanco.executable, namespace, *step])
                lanco.run(namespace, *step)
        # In check mode, or after an absent: the record as it is (None for an unknown task).
        known = current is not None if module.check_mode or not steps else params["state"] != "absent"
        record = lanco.status(namespace, params["name"]) if known else None
    except LancoFailed as failure:
        module.fail_json(msg=failure.msg, rc=failure.rc, **result)
    module.exit_json(**result, task=record, state=(record or {}).get("state", "absent"))


if __name__ == "__main__":
    main()
