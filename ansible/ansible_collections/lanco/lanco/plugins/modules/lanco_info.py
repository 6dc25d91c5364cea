#!/usr/bin/python
"""Ansible module lanco_info: the node's lanco namespaces and a namespace's task records, as facts."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lanco_info
short_description: Gather lanco namespaces and task records as facts
description:
  - Reads the managed node's lanco through its JSON outputs and changes nothing.
  - C(namespaces) is what C(lanco ls --json) lists.
  - With I(namespace), C(tasks) maps each task's name to its record as C(lanco NS status --json NAME) prints it
    (docs/json.md of lanco). These are the running tasks, or every known task with I(all).
  - The same data is set as the fact C(lanco).
version_added: "0.1.0"
author:
  - lanco developers
options:
  namespace:
    description: The namespace whose tasks to read; without it only the namespaces are listed.
    type: str
  names:
    description: Only these tasks (each must be known to lanco).
    type: list
    elements: str
  all:
    description: Finished tasks too (C(lanco NS ls --all)), not only the running ones.
    type: bool
    default: true
  lanco_path:
    description: The lanco executable on the node; by default C(lanco) found on the PATH.
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
notes:
  - Failures report lanco's own one-line message as C(msg), and its exit code as C(rc).
seealso:
  - module: lanco.lanco.lanco_task
"""

EXAMPLES = r"""
- name: Read the tasks of apps
  lanco.lanco.lanco_info:
    namespace: apps
  register: apps

- name: Show the memory limit web runs with
  ansible.builtin.debug:
    msg: "{{ apps.tasks.web.limits.memory_max_bytes }}"

- name: The same, through the fact
  ansible.builtin.debug:
    msg: "{{ ansible_facts.lanco.tasks.web.state }}"
"""

RETURN = r"""
namespaces:
  description: The namespaces the connecting user may use, as C(lanco ls --json) lists them.
  returned: always
  type: list
  elements: dict
tasks:
  description: Task name to the task's record, as C(lanco NS status --json NAME) prints it. Empty without
    I(namespace).
  returned: always
  type: dict
ansible_facts:
  description: C(lanco) with the keys C(namespaces) and C(tasks) above.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lanco.lanco.plugins.module_utils.lanco_cli import (
    Lanco,
    LancoFailed,
    find_executable,
    is_running,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ARGUMENT_SPEC: dict[str, Any] = {
    "namespace": {"type": "str"},
    "names": {"type": "list", "elements": "str"},
    "all": {"type": "bool", "default": True},
    "lanco_path": {"type": "path"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        lanco = Lanco(module, find_executable(params.get("lanco_path"), module.get_bin_path))
        namespaces = lanco.namespaces()
        tasks: dict[str, Any] = {}
        namespace = params.get("namespace")
        if namespace:
            names = params.get("names") or [task["name"] for task in lanco.tasks(namespace)
                                            if params["all"] or is_running(task)]
            tasks = {name: lanco.status(namespace, name) for name in names}
    except LancoFailed as failure:
        module.fail_json(msg=failure.msg, rc=failure.rc, cmd=failure.cmd)
    facts = {"namespaces": namespaces, "tasks": tasks}
    module.exit_json(changed=False, **facts, ansible_facts={"lanco": facts})


if __name__ == "__main__":
    main()
