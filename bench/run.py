"""lanco's benchmark: ``python -m bench [--quick] [--check] [--json FILE] [--only PHASES]`` as root.

See bench/README.md for what is measured and how the verdicts are reached.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from typing import Any

if __package__ in (None, ""):  # run as bench/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.cold import big_daemon, cold_launches
from bench.favordynmods import favordynmods
from bench.phases import PHASES as MEASURED
from bench.phases import Settings, cli_prefix, log
from bench.probes import loadavg
from bench.sandbox import Sandbox
from bench.stats import Figure, table

PHASES = {"cold": cold_launches, **MEASURED, "daemon": big_daemon, "favordynmods": favordynmods}
"""Cold first: the machine is at its quietest when the bench starts."""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Measure lanco on the real kernel.")
    parser.add_argument("--quick", action="store_true",
                        help="a small run (20 tasks, few rounds, one fork bomb, 5 s idle) that proves the bench works")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON to FILE")
    parser.add_argument("--only", metavar="PHASES", help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--idle", type=float, metavar="SECONDS", help="idle-CPU window (default 60, quick 5)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter that runs the CLI (default: this one); lanco must import under -I")
    return parser.parse_args(argv)


def _preflight(python: str) -> str | None:
    if os.geteuid() != 0:
        return "the benchmark needs root (it creates cgroups)"
    probe = subprocess.run([python, "-I", "-c", "import lanco.cli"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return (f"{python} -I cannot import lanco: install it into that interpreter (pip install -e .) or pass "
                f"--python .venv/bin/python\n{probe.stderr.strip()}")
    return None


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    phases = list(PHASES) if not args.only else [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        sys.stderr.write(f"bench: unknown phase(s) {', '.join(unknown)}; known: {', '.join(PHASES)}\n")
        return 2
    problem = _preflight(args.python)
    if problem:
        sys.stderr.write(f"bench: {problem}\n")
        return 2
    import lanco

    settings = Settings.make(args.quick, args.python, args.idle)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    started = time.monotonic()
    figures: list[Figure] = []
    errors: list[str] = []
    info: dict[str, Any] = {
        "lanco": lanco.__version__, "python": args.python, "python_version": platform.python_version(),
        "kernel": platform.release(), "cpus": os.cpu_count(), "quick": args.quick, "phases": phases,
        "loadavg_start": loadavg(), "cli": " ".join(cli_prefix(args.python)),
    }
    sandbox = Sandbox()
    interrupted = False
    try:
        namespace = sandbox.init()
        info.update({"mode": namespace.config.mode, "tracker": namespace.config.tracker,
                     "cgroup_base": sandbox.base, "namespace": sandbox.ns_name})
        log(f"namespace {sandbox.ns_name}, mode {namespace.config.mode} (tracker {namespace.config.tracker}), "
            f"base {sandbox.base}, load {loadavg()}")
        for phase in phases:
            try:
                figures.extend(PHASES[phase](settings, sandbox))
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                errors.append(f"{phase}: {exc}")
                log(f"phase {phase} failed: {exc}")
                traceback.print_exc()
                sandbox.kill_all()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up")
    finally:
        forced = sandbox.cleanup()
        for line in forced:
            log(f"cleanup: {line}")
    info["loadavg_end"] = loadavg()
    info["seconds"] = round(time.monotonic() - started, 1)
    sys.stdout.write(table(figures))
    missed = [f for f in figures if f.met is False]
    sys.stdout.write(f"\nmode {info.get('mode', '?')}, {info['cpus']} cpus, load {info['loadavg_start']} -> "
                     f"{info['loadavg_end']}, {info['seconds']} s{', quick' if args.quick else ''}; "
                     f"targets missed: {len(missed)}\n")
    for error in errors:
        sys.stdout.write(f"ERROR {error}\n")
    if args.json:
        document = {"info": info, "errors": errors, "cleanup": forced, "interrupted": interrupted,
                    "figures": [f.as_dict() for f in figures]}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
    if interrupted:
        return 130
    if errors:
        return 1
    if args.check and missed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
