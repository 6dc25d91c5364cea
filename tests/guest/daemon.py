"""The seed's motivating case, as a systemd service: a small daemon that starts tasks through lanco's Python API
and keeps running. ``python3 daemon.py NAMESPACE READY_DIR``: each start adds the tasks ``job-N`` (a plain
sleep) and ``family-N`` (a shell with children), then writes ``READY_DIR/job-N`` and idles until stopped."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import lanco


def main(ns: str, ready_dir: str) -> int:
    namespace = lanco.Namespace(ns)
    ready = Path(ready_dir)
    start = 1
    while (ready / f"job-{start}").exists():
        start += 1
    namespace.run(f"job-{start}", ["sleep", "3600"], memory_max=64 << 20)
    namespace.run(f"family-{start}", ["sh", "-c", "sleep 3600 & sleep 3600 & wait"])
    (ready / f"job-{start}").write_text(f"{os.getpid()}\n")

    def leave(signum: int, frame: FrameType | None) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, leave)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
