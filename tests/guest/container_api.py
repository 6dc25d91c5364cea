"""Run alone in a fresh cgroup namespace (``unshare --cgroup python3 container_api.py NS``), as a container's only
process would be: lanco's API takes the namespace root over by itself, then manages the subtree. Prints a JSON
report of what it saw."""

from __future__ import annotations

import json
import sys

import lanco


def own_cgroup() -> str:
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        return next(line[3:].strip() for line in f if line.startswith("0::"))


def main(ns: str) -> int:
    report: dict[str, object] = {"before": own_cgroup()}
    namespace = lanco.Namespace.init(ns)
    report["after_init"] = own_cgroup()
    task = namespace.run("t", ["sleep", "300"], memory_max=32 << 20)
    report["running"] = task.is_running()
    (pid,) = task.pids()
    with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
        report["task_cgroup"] = next(line[3:].strip() for line in f if line.startswith("0::"))
    report["limits"] = namespace.backend.limits_in_force(ns, "t")
    report["stopped"] = task.stop(timeout=5).state
    namespace.release()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
