"""The boot unit and boot script that run ``lanco restore`` at every boot (boot/), and scripts/install-boot, which
installs them for a prefix and enables the unit only where systemd is PID 1."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "boot" / "lanco-restore.service.in"
SCRIPT = ROOT / "boot" / "lanco-restore.in"


def unit_settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_unit_runs_restore_once_early_in_the_boot() -> None:
    settings = unit_settings()
    assert settings["Type"] == ["oneshot"] and settings["RemainAfterExit"] == ["yes"]
    assert settings["ExecStart"] == ["@PREFIX@/bin/lanco restore"]
    assert settings["After"] == ["local-fs.target"] and settings["Before"] == ["multi-user.target"]
    assert settings["WantedBy"] == ["multi-user.target"]
    assert "/var/lib/lanco" in settings["RequiresMountsFor"][0]


@pytest.fixture
def installed(tmp_path: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """scripts/install-boot into directories of the test's, for a prefix whose lanco says what it was asked."""
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("PID 1 is systemd here: install-boot would enable the unit on this machine")
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    lanco = prefix / "bin" / "lanco"
    lanco.write_text(f'#!/bin/sh\necho "lanco $*" > {tmp_path}/called\n')
    lanco.chmod(0o755)
    env = {**os.environ, "PREFIX": str(prefix), "UNIT_DIR": str(tmp_path / "unit"),
           "INIT_DIR": str(tmp_path / "init.d")}
    result = subprocess.run([str(ROOT / "scripts" / "install-boot")], env=env, capture_output=True, text=True,
                            check=False, timeout=30)
    assert result.returncode == 0, result.stderr
    return tmp_path, result


def test_install_boot_installs_both_and_enables_nothing_without_systemd(
        installed: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, result = installed
    unit = root / "unit" / "lanco-restore.service"
    script = root / "init.d" / "lanco-restore"
    assert f"ExecStart={root}/prefix/bin/lanco restore\n" in unit.read_text()
    assert oct(unit.stat().st_mode & 0o777) == "0o644" and oct(script.stat().st_mode & 0o777) == "0o755"
    assert "@PREFIX@" not in unit.read_text() + script.read_text()
    assert result.stdout.strip().splitlines() == [
        f"installed {unit} and {script}; PID 1 is not systemd, so neither is enabled: have the boot run "
        f"'{script} start' (sysvinit: update-rc.d lanco-restore defaults)"]
    assert not list(root.glob("**/*.tmp"))


@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_the_boot_script_runs_restore(installed: tuple[Path, subprocess.CompletedProcess[str]], shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell} here")
    root, _ = installed
    script = str(root / "init.d" / "lanco-restore")
    for action in ("start", "restart", "force-reload"):
        (root / "called").unlink(missing_ok=True)
        assert subprocess.run([shell, script, action], check=False, timeout=30).returncode == 0
        assert (root / "called").read_text() == "lanco restore\n"
    (root / "called").unlink()
    assert subprocess.run([shell, script, "stop"], check=False, timeout=30).returncode == 0
    assert not (root / "called").exists()
    bogus = subprocess.run([shell, script, "bogus"], capture_output=True, text=True, check=False, timeout=30)
    assert bogus.returncode == 3 and bogus.stderr.startswith("usage: ")
