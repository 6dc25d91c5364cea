"""What a real ``run`` loads, in every mode, as root and as an unprivileged owner: structural, not timed. Every
module a command imports costs a daemon that launches sporadically (and twentyfold in an emulated guest), and
re, json and enum alone were a third of what run added to the interpreter's start."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lanco
from tests.conftest import TEST_USER, Sandbox, systemd_delegates
from tests.integration.conftest import make_namespace

NEVER_ON_RUN = ("re", "json", "enum", "signal", "argparse", "shutil", "typing", "dataclasses", "inspect", "socket",
                "contextlib", "functools", "collections")
PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from lanco.cli import main
code = main(sys.argv[2:])
print(code, " ".join(sorted(sys.modules)))
"""
# In v2 with systemd, an owner's run goes through a scope: lanco.cgroups.dbus speaks D-Bus on _socket, not socket.


@pytest.mark.parametrize("who", ["root", "owner"])
def test_run_without_options_loads_no_heavy_module(sandbox: Sandbox, mode: str, who: str) -> None:
    user = None if who == "root" else TEST_USER
    if user is not None and mode == "v2" and not systemd_delegates():
        pytest.skip("an unprivileged owner places tasks in v2 only through a systemd user manager (the guest's)")
    ns = make_namespace(sandbox, mode, user=user)
    package_parent = lanco.__file__.rsplit("/lanco/", 1)[0]
    argv = ["env", *(f"{k}={v}" for k, v in sandbox.env.items()), sys.executable, "-I", "-c", PROBE, package_parent,
            ns, "run", "t", "sleep", "30"]
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/", check=False)
    assert result.returncode == 0, result.stderr
    code, _, modules = result.stdout.strip().partition(" ")
    assert code == "0", result.stderr
    loaded = set(modules.split())
    assert "lanco.task" in loaded
    assert not loaded & set(NEVER_ON_RUN), sorted(loaded & set(NEVER_ON_RUN))
    sandbox.ok(ns, "stop", "t", user=user)
