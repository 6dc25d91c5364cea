"""Blocks until a v2 cgroup has no process left: ``python3 -I -S waitempty.py PATH/cgroup.events``.

The monitor runs this only in the rare case where a task's first process exited and left others behind;
it poll()s the events file instead of waking up on a timer. Standard library only, no lanco import.
"""

import os
import select
import sys


def main(events: str) -> int:
    try:
        fd = os.open(events, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    poller = select.poll()
    poller.register(fd, select.POLLPRI | select.POLLERR)
    while True:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            text = os.read(fd, 4096).decode()
        except OSError:
            return 0  # the cgroup is gone
        if "populated 0" in text or not text:
            return 0
        # A change right after another can come without a wake-up: look again every second all the same.
        poller.poll(1000)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
