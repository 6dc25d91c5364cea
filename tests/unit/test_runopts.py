"""lanco.options.runopts: signals, the lifetime (timeout, stop, restart) and the process settings of a run."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from lanco.errors import PermissionDenied, UsageError
from lanco.options.lifetime import Lifetime
from lanco.options.limits import Limits
from lanco.options.runopts import ProcessSettings, RunPlan, read_env_file
from lanco.options.signals import parse_signal, signal_name


class TestSignals:
    @pytest.mark.parametrize(("raw", "number"), [
        ("TERM", signal.SIGTERM), ("SIGTERM", signal.SIGTERM), ("sigint", signal.SIGINT), (" hup ", signal.SIGHUP),
        ("9", 9), (15, 15), ("RTMIN", signal.SIGRTMIN), ("rtmin+2", signal.SIGRTMIN + 2),
        ("SIGRTMAX-1", signal.SIGRTMAX - 1), ("STOP", signal.SIGSTOP),
    ])
    def test_valid(self, raw: int | str, number: int) -> None:
        assert parse_signal(raw) == number

    @pytest.mark.parametrize("raw", ["0", "FOO", "SIG", "", "-1", "99", "RTMIN+99", "RTMAX+1", "Signals", True,
                                     "SIG_DFL", "9.0"])
    def test_invalid(self, raw: Any) -> None:
        with pytest.raises(UsageError, match="invalid stop signal"):
            parse_signal(raw, "stop signal")

    def test_names(self) -> None:
        assert signal_name(signal.SIGTERM) == "SIGTERM"
        assert signal_name(signal.SIGRTMIN + 3) == "SIGRTMIN+3"


class TestLifetime:
    def test_defaults(self) -> None:
        lifetime = Lifetime.build({})
        assert lifetime == Lifetime(None, signal.SIGTERM, 10.0, "no", None, 0.1)

    def test_values(self) -> None:
        lifetime = Lifetime.build({"timeout": "2s", "stop_signal": "INT", "stop_timeout": "500ms",
                                   "restart": "on-failure", "restart_max": "3", "restart_delay": "0"})
        assert lifetime == Lifetime(2.0, signal.SIGINT, 0.5, "on-failure", 3, 0.0)
        assert Lifetime.build({"timeout": 1.5, "stop_timeout": 2}).timeout == 1.5

    @pytest.mark.parametrize(("options", "message"), [
        ({"timeout": "0"}, "invalid timeout '0': must be greater than zero"),
        ({"timeout": "-1s"}, "invalid timeout '-1s'"),
        ({"timeout": -1}, "invalid timeout '-1'"),
        ({"timeout": "5x"}, "invalid timeout '5x': expected a number with ms, s, m, h or d"),
        ({"stop_timeout": "0s"}, "invalid stop timeout '0s': must be greater than zero"),
        ({"stop_signal": "NOPE"}, "invalid stop signal 'NOPE'"),
        ({"restart": "sometimes"}, "invalid restart policy 'sometimes': expected no, on-failure, always"),
        ({"restart_max": 3}, "--restart-max needs --restart on-failure or always"),
        ({"restart": "no", "restart_delay": "1s"}, "--restart-delay needs --restart on-failure or always"),
        ({"restart": "always", "restart_max": "0"}, "invalid restart count '0': must be from 1 to 1000000"),
        ({"restart": "always", "restart_max": "two"}, "invalid restart count 'two': expected a whole number"),
        ({"restart": "always", "restart_delay": "-1"}, "invalid restart delay '-1'"),
    ])
    def test_refused(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(UsageError, match=message):
            Lifetime.build(options)

    def test_record_round_trip(self) -> None:
        lifetime = Lifetime(2.0, signal.SIGINT, 0.5, "always", None, 1.0)
        assert Lifetime.from_record(lifetime.as_record()) == lifetime
        assert Lifetime.from_record(None) == Lifetime()
        assert Lifetime.from_record({"stop_signal": "x"}) == Lifetime()
        assert Lifetime.from_record({"stop_timeout_s": 3}) == Lifetime(stop_timeout=3.0)


class TestEnvironment:
    def test_env_file(self, tmp_path: Path) -> None:
        env_file = tmp_path / "env"
        env_file.write_text("# a comment\n\n  A=1\nB=two words\nQUOTED=\"kept\"\nEQ=a=b\nEMPTY=\n   # indented\n")
        assert read_env_file(str(env_file)) == {"A": "1", "B": "two words", "QUOTED": '"kept"', "EQ": "a=b",
                                                "EMPTY": ""}

    @pytest.mark.parametrize(("text", "message"), [
        ("A=1\nJUSTAKEY\n", "invalid line 2 of environment file .*: expected KEY=VALUE"),
        ("1A=x\n", "invalid environment variable name '1A' in 'line 1 of environment file"),
        ("LANCO_MON_STATE=x\n", "names starting LANCO_MON_ are lanco's"),
    ])
    def test_bad_env_files(self, tmp_path: Path, text: str, message: str) -> None:
        env_file = tmp_path / "env"
        env_file.write_text(text)
        with pytest.raises(UsageError, match=message):
            read_env_file(str(env_file))

    def test_unreadable_env_file(self, tmp_path: Path) -> None:
        with pytest.raises(UsageError, match=r"cannot read environment file .*/missing: No such file"):
            ProcessSettings.build({"env_file": str(tmp_path / "missing")})
        binary = tmp_path / "binary"
        binary.write_bytes(b"\xff\xfe")
        with pytest.raises(UsageError, match="not UTF-8 text"):
            read_env_file(str(binary))

    def test_assignments_win_over_the_file(self, tmp_path: Path) -> None:
        env_file = tmp_path / "env"
        env_file.write_text("A=file\nB=file\n")
        settings = ProcessSettings.build({"env_file": str(env_file), "extra_env": ["B=flag", "C=$HOME;`x`\nz"]})
        assert settings.extra_env == {"A": "file", "B": "flag", "C": "$HOME;`x`\nz"}
        assert ProcessSettings.build({"extra_env": {"K": "V"}}).extra_env == {"K": "V"}
        assert ProcessSettings.build({"extra_env": "K=V=W"}).extra_env == {"K": "V=W"}
        env = settings.environment({"A": "base", "PATH": "/bin"})
        assert env == {"A": "file", "B": "flag", "C": "$HOME;`x`\nz", "PATH": "/bin"}

    @pytest.mark.parametrize(("assignment", "message"), [
        ("K", "invalid environment assignment 'K': expected KEY=VALUE"),
        ("=V", "invalid environment variable name ''"),
        ("A-B=1", "invalid environment variable name 'A-B'"),
        ("LANCO_MON_JOIN=/tmp", "invalid environment variable LANCO_MON_JOIN"),
    ])
    def test_bad_assignments(self, assignment: str, message: str) -> None:
        with pytest.raises(UsageError, match=message):
            ProcessSettings.build({"extra_env": [assignment]})


class TestProcessSettings:
    def test_cwd(self, tmp_path: Path) -> None:
        assert ProcessSettings.build({"cwd": str(tmp_path)}).cwd == str(tmp_path)
        with pytest.raises(UsageError, match=f"working directory {tmp_path}/nope does not exist"):
            ProcessSettings.build({"cwd": str(tmp_path / "nope")})

    @pytest.mark.parametrize(("raw", "value"), [("022", 0o22), ("0027", 0o27), ("0o77", 0o77), ("7", 7),
                                                (0o22, 0o22), ("777", 0o777)])
    def test_umask(self, raw: int | str, value: int) -> None:
        assert ProcessSettings.build({"umask": raw}).umask == value

    @pytest.mark.parametrize("raw", ["999", "-1", "abc", "", "07777", 0o1000, -1])
    def test_bad_umask(self, raw: int | str) -> None:
        with pytest.raises(UsageError, match="invalid umask"):
            ProcessSettings.build({"umask": raw})

    def test_nice(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert ProcessSettings.build({"nice": "-20"}).nice == -20
        for bad in ("20", "-21", "low", "1.5"):
            with pytest.raises(UsageError, match="invalid niceness"):
                ProcessSettings.build({"nice": bad})
        monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
        monkeypatch.setattr(os, "getpriority", lambda which, who: 5)
        assert ProcessSettings(nice=7).exec_prefix() == ["/usr/bin/nice", "-n", "2", "--"]
        assert ProcessSettings(nice=5).exec_prefix() == []
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        with pytest.raises(PermissionDenied, match="--nice 0 is below the current niceness 5: only root"):
            ProcessSettings(nice=0).exec_prefix()
        monkeypatch.setattr(shutil, "which", lambda name: None)
        with pytest.raises(UsageError, match="--nice needs the nice command, which is not installed"):
            ProcessSettings(nice=9).exec_prefix()

    def test_account_as_root(self, monkeypatch: pytest.MonkeyPatch) -> None:
        entry = pwd.getpwuid(os.getuid())
        monkeypatch.setattr(os, "geteuid", lambda: 0)
        monkeypatch.setattr(os, "getegid", lambda: 0)
        monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
        settings = ProcessSettings.build({"user": entry.pw_name})
        account = settings.account
        assert account is not None and (account.uid, account.gid) == (entry.pw_uid, entry.pw_gid)
        if entry.pw_uid != 0:
            assert settings.exec_prefix() == ["/usr/bin/setpriv", f"--reuid={entry.pw_uid}",
                                              f"--regid={entry.pw_gid}", "--init-groups", "--inh-caps=-all", "--"]
        env = settings.environment({"USER": "root", "HOME": "/root"})
        assert (env["USER"], env["LOGNAME"], env["HOME"]) == (entry.pw_name, entry.pw_name, entry.pw_dir)
        by_id = ProcessSettings.build({"user": str(entry.pw_uid), "group": "12345"}).account
        assert by_id is not None and (by_id.uid, by_id.gid) == (entry.pw_uid, 12345)
        group_only = ProcessSettings.build({"group": "54321"})
        assert group_only.exec_prefix() == ["/usr/bin/setpriv", "--regid=54321", "--clear-groups",
                                            "--inh-caps=-all", "--"]

    def test_account_refusals(self, monkeypatch: pytest.MonkeyPatch) -> None:
        with pytest.raises(UsageError, match="unknown user 'no-such-user-here'"):
            ProcessSettings.build({"user": "no-such-user-here"})
        with pytest.raises(UsageError, match="unknown group 'no-such-group-here'"):
            ProcessSettings.build({"group": "no-such-group-here"})
        monkeypatch.setattr(os, "geteuid", lambda: 4242)
        with pytest.raises(PermissionDenied, match="--user and --group need root"):
            ProcessSettings.build({"user": "root"})

    def test_record_keeps_no_environment_value(self) -> None:
        settings = ProcessSettings(extra_env={"TOKEN": "secret"}, umask=0o27, nice=3)
        assert settings.as_record() == {"env_keys": ["TOKEN"], "umask": "0027", "nice": 3, "uid": None,
                                        "gid": None}


class TestRunPlan:
    def test_everything_parsed_at_once(self) -> None:
        plan = RunPlan.build({"pids_max": "5", "timeout": "1m", "umask": "077", "log": "/tmp/x", "foreground": True})
        assert plan.limits == Limits(pids_max=5)
        assert plan.lifetime.timeout == 60.0
        assert plan.process.umask == 0o77
        assert (plan.log, plan.foreground, plan.keep_log) == ("/tmp/x", True, False)

    def test_unknown_option(self) -> None:
        with pytest.raises(UsageError, match="unknown run option 'memory'"):
            RunPlan.build({"memory": "5M"})

    def test_the_option_keys_are_those_of_the_typed_dicts(self) -> None:
        # The command path lists the keys by hand, to leave typing unloaded; the TypedDicts document them.
        from lanco.options import limittable, runopts

        assert set(limittable.SPECS) == limittable.LimitOptions.__optional_keys__
        assert runopts.RunOptions.__optional_keys__ == runopts.PLAN_OPTION_KEYS | limittable.SPECS.keys()
        assert runopts.RunOptions.__required_keys__ == frozenset()

    def test_the_declaration_for_type_checkers_names_every_limit(self) -> None:
        """At run time LimitOptions is made from the limits table; type checkers read its declaration beside the
        table, which must name the same keys in the same order."""
        import ast

        from lanco.options import limittable

        tree = ast.parse(Path(limittable.__file__).read_text(encoding="utf-8"))
        declared = next(node for node in ast.walk(tree)
                        if isinstance(node, ast.ClassDef) and node.name == "LimitOptions")
        keys = [item.target.id for item in declared.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)]
        assert keys == list(limittable.SPECS)


# -- what execve takes ------------------------------------------------------------------------------------------


def test_exec_size_per_string_is_the_kernels() -> None:
    from lanco.options.runopts import MAX_ARG_STRLEN, check_exec_size

    value = "x" * (MAX_ARG_STRLEN - len("BIG=") - 1)  # NAME=value and its NUL: exactly the limit
    check_exec_size(["true"], {"BIG": value})
    with pytest.raises(UsageError, match=r"^environment variable BIG is 131073 bytes with its name, over the "
                                         r"kernel's limit of 131072 for one string \(MAX_ARG_STRLEN\): execve "
                                         r"would fail with E2BIG$"):
        check_exec_size(["true"], {"BIG": value + "x"})
    check_exec_size(["echo", "y" * (MAX_ARG_STRLEN - 1)], {})
    with pytest.raises(UsageError, match=r"^argument 1 of the command is 131073 bytes, over .*E2BIG$"):
        check_exec_size(["echo", "y" * MAX_ARG_STRLEN], {})
    with pytest.raises(UsageError, match=r"^the command is 1048578 bytes"):
        check_exec_size(["/" + "z" * (1 << 20)], {})


def test_exec_size_in_total_follows_the_stack_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    from lanco.options import runopts

    def stack(limit: int) -> None:
        monkeypatch.setattr(resource, "getrlimit", lambda which: (limit, resource.RLIM_INFINITY))

    stack(8 << 20)
    assert runopts.exec_limit() == 2 << 20
    stack(resource.RLIM_INFINITY)
    assert runopts.exec_limit() == 6 << 20
    stack(64 << 10)
    assert runopts.exec_limit() == 128 << 10
    stack(8 << 20)
    env = {f"V{i}": "v" * 100_000 for i in range(21)}
    with pytest.raises(UsageError, match=r"^the command and its environment take 21\d{5} bytes, over the kernel's "
                                         r"limit of 2097152 for all of them \(ARG_MAX: .*E2BIG$"):
        runopts.check_exec_size(["true"], env)
    runopts.check_exec_size(["true"], dict(list(env.items())[:20]))


def test_interpreter_of_a_script_is_read_as_the_kernel_reads_it(tmp_path: Path) -> None:
    from lanco.errors import CommandNotExecutable, CommandNotFound
    from lanco.taskstart import resolve_command

    script = tmp_path / "s"
    script.write_text("#!\tinterp\t-x\n")
    script.chmod(0o755)
    with pytest.raises(CommandNotFound, match=r"^command \./s cannot run: its interpreter interp \(its #! line\) "
                                              r"is not found$") as caught:
        resolve_command("./s", "", str(tmp_path))  # relative: to the task's working directory, as execve
    assert caught.value.exit_code == 127
    (tmp_path / "interp").write_text("")
    (tmp_path / "interp").chmod(0o644)
    with pytest.raises(CommandNotExecutable) as refused:
        resolve_command("./s", "", str(tmp_path))
    assert refused.value.exit_code == 126
    (tmp_path / "interp").chmod(0o755)
    assert resolve_command("./s", "", str(tmp_path)) == os.path.join(tmp_path, "./s")
    for harmless in ("#!\n", "no shebang\n", ""):
        script.write_text(harmless)
        assert resolve_command("./s", "", str(tmp_path)) == os.path.join(tmp_path, "./s")
