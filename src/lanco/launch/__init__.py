"""The only code that starts processes: spawn (the detached monitor, a lost run's hook, mount), the monitor's
contract (its environment and result format, written once), the monitor itself (monitor.sh) and the small
helper program it runs (waitempty.py)."""
