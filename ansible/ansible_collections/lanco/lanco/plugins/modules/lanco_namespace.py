#!/usr/bin/python
"""Ansible module lanco_namespace: a lanco namespace present or absent, through the node's lanco command."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lanco_namespace
short_description: Create or destroy a lanco namespace
description:
  - Runs the managed node's C(lanco) command line. I(state=present) runs C(lanco NS init) when the namespace
    does not exist yet, and I(state=absent) runs C(lanco NS release).
  - Idempotent. Whether the namespace exists, and whose it is, is read from C(lanco ls --json).
  - A namespace that exists with another owner or group than asked is an error, never changed in place.
    Release it first.
version_added: "0.1.0"
author:
  - lanco developers
options:
  name:
    description: The namespace's name.
    type: str
    required: true
  state:
    description:
      - C(present) creates it (C(lanco NS init)).
      - C(absent) stops its running tasks when I(stop_tasks) is true, then destroys it (C(lanco NS release)).
    type: str
    choices: [present, absent]
    default: present
  user:
    description: The namespace's owner (C(init -u); root creates namespaces for other users). Default the
      connecting user.
    type: str
  group:
    description: Let the members of this group use the namespace too (C(init -g)).
    type: str
  stop_tasks:
    description: With I(state=absent), stop the running tasks first (C(lanco NS stop --all)). Otherwise lanco
      refuses to release a namespace with running tasks.
    type: bool
    default: true
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
seealso:
  - module: lanco.lanco.lanco_task
  - module: lanco.lanco.lanco_info
"""

EXAMPLES = r"""
- name: A namespace of alice's, usable by the staff group
  become: true
  lanco.lanco.lanco_namespace:
    name: apps
    user: alice
    group: staff

- name: Gone, its tasks stopped
  become: true
  lanco.lanco.lanco_namespace:
    name: apps
    state: absent
"""

RETURN = r"""
namespace:
  description: The namespace as C(lanco ls --json) lists it (owner, group, cgroup_mode, state_dir, ...); null
    when absent.
  returned: always
  type: dict
  sample:
    name: apps
    owner: alice
    owner_uid: 1000
    group: staff
    owner_gid: 50
    group_access: true
    cgroup_mode: hybrid
    state_dir: /var/lib/lanco/apps
    log_dir: /var/log/lanco-apps
cmd:
  description: The lanco command lines run, in order.
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
    find_executable,
    init_argv,
    is_running,
    namespace_mismatch,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ARGUMENT_SPEC: dict[str, Any] = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "user": {"type": "str"},
    "group": {"type": "str"},
    "stop_tasks": {"type": "bool", "default": True},
    "lanco_path": {"type": "path"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    name = params["name"]
    result: dict[str, Any] = {"changed": False, "cmd": []}
    try:
        lanco = Lanco(module, find_executable(params.get("lanco_path"), module.get_bin_path))
        current = lanco.namespace(name)
        steps: list[list[str]] = []
        if params["state"] == "present" and current is None:
            steps = [init_argv(params)]
        elif current is not None and params["state"] == "present":
            mismatch = namespace_mismatch(current, params)
            if mismatch:
                module.fail_json(msg=mismatch, namespace=current, **result)
        elif current is not None:
            if params["stop_tasks"] and any(is_running(task) for task in lanco.tasks(name)):
                steps.append([name, "stop", "--all"])
            steps.append([name, "release"])
        result["changed"] = bool(steps)
        result["diff"] = {"before": {"state": "absent"} if current is None else {"state": "present", **current},
                          "after": {"state": params["state"], **({} if params["state"] == "absent" else
                                    {"user": params.get("user"), "group": params.get("group")}
                                    if current is None else current)}}
        if module.check_mode or not steps:
            module.exit_json(**result, namespace=current)
        for step in steps:
            result["cmd"].append([lanco.executable, *step])
            lanco.run(*step)
        module.exit_json(**result, namespace=lanco.namespace(name))
    except LancoFailed as failure:
        module.fail_json(msg=failure.msg, rc=failure.rc, **result)


if __name__ == "__main__":
    main()
