"""Refusals that name the right cause and leave nothing behind (issue 12, point 9): one line on stderr in the
original's form, a documented exit code, no half-made record, cgroup or process."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat

import pytest

from tests.conftest import Sandbox
from tests.integration.conftest import make_namespace, record_dirs
from tests.integration.test_lifecycle import one_warning


def test_init_again_without_group_keeps_it_and_says_so(sandbox: Sandbox, test_user: str, other_user: str,
                                                       mode: str) -> None:
    group = grp.getgrgid(pwd.getpwnam(test_user).pw_gid).gr_name
    ns = make_namespace(sandbox, mode, user=test_user, group=group)
    tasks = sandbox.state_dir(ns) / "tasks"
    again = sandbox.lanco("--cgroup-mode", mode, ns, "init", "-u", test_user)
    assert again.returncode == 0
    assert one_warning(again.stderr, "init") == (f"namespace {ns} keeps its group access for group {group}: init "
                                                 "without -g changes nothing (release the namespace and init it "
                                                 "again to drop it)")
    assert stat.S_IMODE(os.stat(tasks).st_mode) == 0o2770
    assert stat.S_IMODE(os.stat(sandbox.log_dir(ns)).st_mode) == 0o2770
    assert sandbox.ok("--cgroup-mode", mode, ns, "init", "-u", test_user, "-g", group).stderr == ""
    other_group = grp.getgrgid(pwd.getpwnam(other_user).pw_gid).gr_name
    refused = sandbox.lanco("--cgroup-mode", mode, ns, "init", "-u", test_user, "-g", other_group)
    assert refused.returncode == 1
    assert one_warning(refused.stderr, "init") == (f"namespace {ns} is already initialised for group {group}, not "
                                                   f"for group {other_group} (release it and init it again to "
                                                   "change that)")
    # Without group access at the first init: init again says nothing, and -g is refused.
    plain = make_namespace(sandbox, mode, user=test_user)
    assert sandbox.ok("--cgroup-mode", mode, plain, "init", "-u", test_user).stderr == ""
    assert stat.S_IMODE(os.stat(sandbox.state_dir(plain) / "tasks").st_mode) == 0o700
    refused = sandbox.lanco("--cgroup-mode", mode, plain, "init", "-u", test_user, "-g", group)
    assert refused.returncode == 1
    assert one_warning(refused.stderr, "init") == (f"namespace {plain} is already initialised without group "
                                                   f"access, not for group {group} (release it and init it again "
                                                   "to change that)")


def test_another_cgroup_base_is_refused(sandbox: Sandbox, ns: str) -> None:
    sandbox.ok(ns, "run", "t", "sleep", "30")
    elsewhere = {"LANCO_CGROUP_BASE": "/lanco-elsewhere"}
    for command, args, extra in (("check", ["--cgroup-base", "/lanco-elsewhere", ns, "check", "t"], None),
                                 ("stop", [ns, "stop", "t"], elsewhere), ("run", [ns, "run", "u", "true"], elsewhere)):
        result = sandbox.lanco(*args, extra_env=extra)
        assert result.returncode == 2, args
        assert one_warning(result.stderr, command) == \
            f"namespace {ns} was initialised with cgroup base {sandbox.base}, not /lanco-elsewhere"
    assert sandbox.lanco(ns, "check", "t").returncode == 0
    assert sandbox.lanco(ns, "check", "u").returncode == 1
    sandbox.ok("--cgroup-base", sandbox.base + "/", ns, "stop", "t")


def test_a_failed_run_leaves_no_record_directory(sandbox: Sandbox, ns: str) -> None:
    tasks = sandbox.state_dir(ns) / "tasks"
    result = sandbox.lanco(ns, "run", "-l", "/nonexistent-dir/t.log", "t", "true")
    assert result.returncode == 1
    assert one_warning(result.stderr, "run") == "cannot open log /nonexistent-dir/t.log: No such file or directory"
    assert record_dirs(tasks) == []
    assert sandbox.ok(ns, "ls", "-q", "--all").stdout == ""
    # A finished task's next run that fails takes the old record with it (the run cleared it) and leaves nothing.
    sandbox.ok(ns, "run", "-f", "done", "true")
    assert record_dirs(tasks) == ["done"]
    result = sandbox.lanco(ns, "run", "-l", "/nonexistent-dir/d.log", "done", "true")
    assert result.returncode == 1
    assert record_dirs(tasks) == []
    assert sandbox.lanco(ns, "check", "done").returncode == 1
    sandbox.ok(ns, "run", "done", "true")  # the name is free


def test_views_list_no_directory_without_a_record(sandbox: Sandbox, ns: str) -> None:
    # What a launcher killed before it wrote the spec leaves: a record directory holding only its lock.
    (sandbox.state_dir(ns) / "tasks" / "half").mkdir()
    (sandbox.state_dir(ns) / "tasks" / "half" / "lock").touch()
    sandbox.ok(ns, "run", "-f", "whole", "true")
    assert sandbox.ok(ns, "ls", "-q", "--all").stdout == "whole\n"
    import json

    assert [t["name"] for t in json.loads(sandbox.ok(ns, "ls", "--all", "--json").stdout)["tasks"]] == ["whole"]
    assert "half" not in sandbox.ok(ns, "ls", "--all").stdout
    result = sandbox.lanco(ns, "status", "half")
    assert result.returncode == 1 and one_warning(result.stderr, "status") == "task half is not known"
    sandbox.ok(ns, "run", "-f", "half", "true")  # the name is usable
    assert sandbox.ok(ns, "ls", "-q", "--all").stdout == "half\nwhole\n"


MAX_ARG_STRLEN = 131072


def test_an_environment_execve_would_refuse_is_refused_before_anything(sandbox: Sandbox, ns: str) -> None:
    tasks = sandbox.state_dir(ns) / "tasks"
    env_file = sandbox.root / "big.env"
    env_file.write_text("BIG=" + "x" * (1 << 20) + "\n")
    result = sandbox.lanco(ns, "run", "--env-file", str(env_file), "t", "true")
    assert result.returncode == 2
    assert one_warning(result.stderr, "run") == (
        f"environment variable BIG is {(1 << 20) + 5} bytes with its name, over the kernel's limit of "
        f"{MAX_ARG_STRLEN} for one string (MAX_ARG_STRLEN): execve would fail with E2BIG")
    assert record_dirs(tasks) == [] and sandbox.lanco(ns, "check", "t").returncode == 1
    # The boundary is the kernel's: NAME=value with its NUL at exactly the limit runs, one byte more does not.
    value = "v" * (MAX_ARG_STRLEN - len("V=") - 1)
    sandbox.ok(ns, "run", "-f", "-e", f"V={value}", "edge", "sh", "-c", f'test "${{#V}}" -eq {len(value)}')
    env_file.write_text(f"V={value}v\n")  # no command line can carry it: -e V=... would be the over-long string
    result = sandbox.lanco(ns, "run", "--env-file", str(env_file), "over", "true")
    assert result.returncode == 2 and "E2BIG" in one_warning(result.stderr, "run")
    # Many strings, each within the limit, over the total.
    env_file.write_text("".join(f"V{i}={'w' * 120_000}\n" for i in range(60)))
    result = sandbox.lanco(ns, "run", "--env-file", str(env_file), "many", "true")
    assert result.returncode == 2
    assert "(ARG_MAX: a quarter of the stack limit" in one_warning(result.stderr, "run")
    assert sorted(record_dirs(tasks)) == ["edge"]


def test_a_script_whose_interpreter_is_missing_is_refused_naming_both(sandbox: Sandbox, ns: str) -> None:
    bin_dir = sandbox.root / "bin"
    bin_dir.mkdir()
    script = bin_dir / "job.sh"
    script.write_text("#!/nonexistent/interp -x\necho never\n")
    script.chmod(0o755)
    tasks = sandbox.state_dir(ns) / "tasks"
    result = sandbox.lanco(ns, "run", "t", str(script))
    assert result.returncode == 127
    assert one_warning(result.stderr, "run") == (f"command {script} cannot run: its interpreter /nonexistent/interp "
                                                 "(its #! line) is not found")
    result = sandbox.lanco(ns, "run", "-e", f"PATH={bin_dir}:/usr/bin:/bin", "t", "job.sh")
    assert result.returncode == 127
    assert one_warning(result.stderr, "run") == ("command job.sh cannot run: its interpreter /nonexistent/interp "
                                                 "(its #! line) is not found")
    plain = bin_dir / "plain-file"
    plain.write_text("not a program\n")
    plain.chmod(0o644)
    script.write_text(f"#!{plain}\n")
    result = sandbox.lanco(ns, "run", "t", str(script))
    assert result.returncode == 126
    assert one_warning(result.stderr, "run") == (f"command {script} cannot run: its interpreter {plain} "
                                                 "(its #! line) is not executable")
    assert record_dirs(tasks) == [] and sandbox.lanco(ns, "check", "t").returncode == 1
    script.write_text("#!/bin/sh\necho ran\n")
    sandbox.ok(ns, "run", "-f", "t", str(script))


def test_an_interpreter_gone_before_a_restart_is_named_in_the_log(sandbox: Sandbox, ns: str) -> None:
    """run checks the #! line once, at the start: an interpreter removed later (an upgrade between two runs of a
    --restart task) fails the restart's exec, whose shell names the script as not found. The log says which file
    is missing, and the run ends 127."""
    interpreter_dir = sandbox.root / "interp"
    interpreter_dir.mkdir()
    interpreter = interpreter_dir / "sh"
    shutil.copy("/bin/sh", interpreter)
    script = sandbox.root / "job"
    # The first run ends only once the interpreter it runs in is gone, so the restart finds it missing.
    script.write_text(f"#!{interpreter}\nwhile [ -e {interpreter} ]; do sleep 0.02; done\nexit 3\n")
    script.chmod(0o755)
    sandbox.ok(ns, "run", "--restart", "on-failure", "--restart-max", "1", "--restart-delay", "0", "t", str(script))
    interpreter.unlink()
    assert sandbox.lanco(ns, "wait", "-t", "60", "t").returncode == 127
    log_lines = (sandbox.log_dir(ns) / "task-t.log").read_text().splitlines()
    assert log_lines[-1].endswith(f" [WARN/run] task t: command {script} cannot run: its interpreter {interpreter} "
                                  "(its #! line) is not found"), log_lines
    assert len(log_lines) == 2, log_lines  # the shell's own line, then lanco's


@pytest.mark.parametrize("mode", [None, "v1"])  # where this host lets its test user place tasks
def test_a_working_directory_the_owner_cannot_enter_is_refused_leaving_the_name_free(sandbox: Sandbox,
                                                                                     test_user: str,
                                                                                     mode: str | None) -> None:
    # A directory that exists but is closed to the owner: run checks only that it exists, and the monitor, which
    # enters it itself (after systemd placed it, on that route), says so before anything of the run is kept.
    ns = make_namespace(sandbox, mode, user=test_user)
    closed = sandbox.root / "closed"
    closed.mkdir(mode=0o700)
    result = sandbox.lanco(ns, "run", "--cwd", str(closed), "t", "true", user=test_user)
    assert result.returncode == 1
    assert one_warning(result.stderr, "run") == f"cannot start task t: cannot enter the working directory {closed}"
    assert record_dirs(sandbox.state_dir(ns) / "tasks") == []
    assert sandbox.lanco(ns, "check", "t", user=test_user).returncode == 1
    opened = sandbox.root / "opened"
    opened.mkdir(mode=0o755)
    ran = sandbox.ok(ns, "run", "-f", "--cwd", str(opened), "t", "sh", "-c", "pwd; echo $PWD", user=test_user)
    assert ran.returncode == 0
    assert ran.stdout == f"{opened}\n{opened}\n"  # -f: the output comes to the caller
