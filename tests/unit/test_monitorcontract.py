"""The two sides of the monitor's contract agree: lanco.launch.monitorcontract (Python) and monitor.sh (shell) name the
same variables, the monitor writes the result fields the launcher reads, and an exit hook is told the same
variables whoever runs it."""

from __future__ import annotations

import re
from pathlib import Path

from lanco.launch import monitorcontract as contract
from lanco.options.lifetime import Lifetime
from tests.unit.conftest import NS, TASK, FakeHost

SCRIPT = (Path(contract.__file__).parent / "monitor.sh").read_text()
HEADER = SCRIPT[:SCRIPT.index("\nset -f\n")]


def _names(text: str) -> set[str]:
    return set(re.findall(r"\bLANCO_MON_[A-Z_]*[A-Z]\b", text))


def test_the_script_s_header_lists_every_variable_and_the_script_uses_no_other() -> None:
    assert _names(HEADER) == set(contract.VARIABLES)
    assert _names(SCRIPT) == set(contract.VARIABLES)
    assert len(contract.VARIABLES) == len(set(contract.VARIABLES))
    assert all(name.startswith(contract.PREFIX) for name in contract.VARIABLES)


def test_the_task_starts_with_every_variable_unset() -> None:
    unset = re.search(r"\n *unset (LANCO_MON_.*?) NL\n", SCRIPT, re.DOTALL)
    assert unset is not None
    assert set(unset.group(1).replace("\\\n", " ").split()) == set(contract.VARIABLES)


def test_the_launcher_sets_every_variable_but_the_go(host: FakeHost) -> None:
    env = contract.monitor_environment(
        host.v1(), NS, TASK, state_dir="/state", run_id="0123", lifetime=Lifetime(timeout=1.5), umask=0o22,
        exec_prefix=["nice"], task_path=None, waiter=["python3", "waitempty.py"], hook=None, hook_as=[], log=None,
        cwd=None)
    assert set(env) == {*contract.VARIABLES, "PATH"} - {contract.GO}
    assert (env[contract.TIMEOUT], env[contract.UMASK], env[contract.PATH]) == ("1.5", "0022", "")
    placed = contract.waiting_for_go(env, 5)
    assert (placed[contract.MONITORS], placed[contract.GO]) == ("", "5")


def test_the_result_the_monitor_writes_is_the_one_read() -> None:
    written = set(re.findall(r'echo "([a-z_]+)=\$', SCRIPT[SCRIPT.index('> "$state/result.tmp"') - 300:]))
    assert written == {"run_id", "result", "exit_code", "signal", "restarts"}
    fields = {key: "1" for key in sorted(written)}
    assert contract.parse_result(contract.format_result(fields)) == fields
    assert contract.parse_result(contract.format_result(contract.lost_result("ab"))) == {
        "run_id": "ab", "result": "lost", "exit_code": "", "signal": ""}
    assert contract.parse_result("run_id=ab\nexit_code=0\n") is None  # no result: damaged


def test_a_hook_is_told_the_same_variables_by_the_monitor_and_by_lanco() -> None:
    hook = SCRIPT[SCRIPT.index("run_hook() {"):]
    hook = hook[:hook.index("\n}\n")]
    told = set(re.findall(r"\b(LANCO_[A-Z_]+)=", hook))
    assert told == set(contract.HOOK_VARIABLES)
    env = contract.hook_environment(NS, TASK, {"result": "lost"}, None)
    assert list(env) == list(contract.HOOK_VARIABLES)
    assert (env["LANCO_RESULT"], env["LANCO_LOG"], env["LANCO_EXIT_CODE"]) == ("lost", "", "")
