"""lanco.messages.escape: what a task or a user chose is shown in every text view as one line of that view.

The report: an argument ``$'x\\n │  → 1 /sbin/init'`` added a fake process line to ``ls`` and ``status``.
"""

from __future__ import annotations

import codecs

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanco import messages
from lanco.messages import escape
from lanco.state.record import TaskRecord
from lanco.views.render import NamespaceInfo, namespaces_text, status_text, tree
from lanco.views.top import Sample, TaskSample, build_frame, frame_text

FORGED = "x\n │  → 1 /sbin/init"
"""An argument that, shown raw, is a process line of its own in ls."""


def unescape(text: str) -> str:
    """The inverse of escape, by Python's own reading of the same escapes."""
    return codecs.decode(text.encode("latin-1", "backslashreplace"), "unicode_escape")


@pytest.mark.parametrize(("text", "shown"), [
    ("plain words, é ü ñ 漢字", "plain words, é ü ñ 漢字"),
    (FORGED, "x\\n │  → 1 /sbin/init"),
    ("a\tb\rc", "a\\tb\\rc"),
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("back\\slash", "back\\\\slash"),
    ("\x00\x7f\x85\xa0", "\\x00\\x7f\\x85\\xa0"),
    ("\u2028\u2029", "\\u2028\\u2029"),
    ("evil\u202egnp.exe", "evil\\u202egnp.exe"),
    ("\U000e0041", "\\U000e0041"),
    ("\udcff\udc80", "\\xff\\x80"),  # bytes that are not UTF-8, as os.fsdecode keeps them
])
def test_escapes(text: str, shown: str) -> None:
    assert escape(text) == shown


@settings(max_examples=500, deadline=None)
@given(text=st.text())
def test_any_text_is_one_printable_line_that_reads_back(text: str) -> None:
    shown = escape(text)
    assert shown.isprintable()
    assert unescape(shown) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text())
def test_messages_stay_one_line(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    messages.warn("run", f"command {text} not found")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n")
    assert err[:-1].isprintable()


def test_ls_shows_a_forged_argument_on_its_own_process_line() -> None:
    records = [TaskRecord("testns", "t", "running", argv=["sh", "-c", "sleep 300", FORGED], pids=[7, 8])]
    text = tree("testns", records, cmdlines={7: f"sh -c sleep 300 {FORGED}", 8: "sleep 300"})
    assert text.splitlines() == ["testns", " ├ t", " │  → 7 sh -c sleep 300 x\\n │  → 1 /sbin/init",
                                 " │  → 8 sleep 300"]
    long = tree("testns", records, long=True, cmdlines={7: f"sh -c sleep 300 {FORGED}", 8: "sleep 300"})
    assert len(long.splitlines()) == 4


def test_a_damaged_result_cannot_paint_the_tree() -> None:
    text = tree("testns", [TaskRecord("testns", "t", "\x1b[2J\x1b[Hexited")], cmdlines={})
    assert text == "testns\n ├ t (\\x1b[2J\\x1b[Hexited)\n"


def test_status_escapes_every_value() -> None:
    record = TaskRecord("testns", "t", "running", argv=["sh", "-c", "sleep 300", FORGED], pids=[7],
                        log=f"/tmp/{FORGED}.log", exit_command=f"echo {FORGED}", started=1700000000.0,
                        limits={"cpuset": "0\n forged: row"})
    text = status_text(record, now=1700000001.0, cmdlines={7: f"sh -c sleep 300 {FORGED}"})
    lines = text.splitlines()
    assert not any(line.lstrip().startswith(("→", "1 /sbin/init", "forged")) for line in lines), text
    assert "     command: sh -c sleep 300 x\\n │  → 1 /sbin/init" in lines
    assert "              7 sh -c sleep 300 x\\n │  → 1 /sbin/init" in lines
    assert "         log: /tmp/x\\n │  → 1 /sbin/init.log" in lines
    assert "exit command: echo x\\n │  → 1 /sbin/init" in lines
    assert len(lines) == len(status_text(TaskRecord("testns", "t", "running", argv=["sh"], pids=[7], log="/l",
                                                    exit_command="e", started=1700000000.0,
                                                    limits={"cpuset": "0"}),
                                         now=1700000001.0, cmdlines={7: "sh"}).splitlines())


def test_top_escapes_the_command() -> None:
    def sample(at: float) -> Sample:
        return Sample(namespace="testns", monotonic_s=at, epoch_s=1700000000.0 + at, nbcpus=2,
                      memory_total_bytes=1 << 30,
                      tasks=(TaskSample(name="t", state="running", process_count=1, command=f"sleep {FORGED}",
                                        cpu_usage_usec=int(at * 1000), memory_current_bytes=1 << 20,
                                        memory_max_bytes=None, pressure=None),))

    frame = build_frame(sample(1.0), sample(2.0))
    lines = frame_text(frame).splitlines()
    assert len(lines) == 3, lines
    assert lines[2].endswith("sleep x\\n │  → 1 /sbin/init")
    assert frame_text(frame, 60).count("\n") == 3


def test_namespace_list_escapes_names() -> None:
    """A directory under the state root is named by whoever made it: its name is escaped like the rest."""
    info = NamespaceInfo(name="a\nb", owner="u", owner_uid=1, group="g", owner_gid=1, group_access=False,
                         cgroup_mode="v2", state_dir="/s", log_dir="/l", created=0.0)
    assert namespaces_text([info]) == "a\\nb\n"
