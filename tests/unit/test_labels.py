"""Labels and descriptions: the rules of lanco.options.labels, their way into the record, every view that shows
them (the same in each), and the selectors of ls, stop, wait and Namespace.tasks, on the fake cgroupfs."""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanco.cli import main
from lanco.errors import StateError, UsageError
from lanco.namespace import Namespace
from lanco.options import labels as labelling
from lanco.options.runopts import RunPlan
from lanco.state.record import TaskRecord, read_spec, write_spec
from lanco.views import render, stats, top
from tests.unit.conftest import NS, FakeHost
from tests.unit.test_views import TASKS, FakeNamespace, fake_namespace
from tests.unit.test_views import frozen_clock as frozen_clock  # the fixture, shared

KEY_ENDS = string.ascii_letters + string.digits
KEY_CHARACTERS = KEY_ENDS + "._/-"
keys = st.one_of(st.sampled_from(KEY_ENDS),
                 st.builds(lambda first, middle, last: first + middle + last, st.sampled_from(KEY_ENDS),
                           st.text(KEY_CHARACTERS, max_size=61), st.sampled_from(KEY_ENDS)))
values = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"),
                 max_size=255)


# -- the rules -------------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, max_size=labelling.MAX_LABELS))
def test_every_label_within_the_rules_is_kept_as_given(wanted: dict[str, str]) -> None:
    assert labelling.parse_labels(wanted) == wanted
    words = [f"{key}={value}" for key, value in wanted.items()]
    assert labelling.parse_labels(words) == wanted  # a value may hold '=': only the first one splits
    assert labelling.matches(wanted, wanted) and labelling.matches(wanted, {})


def one_line_refusal(raw: object) -> str:
    with pytest.raises(UsageError) as caught:
        labelling.parse_labels(raw)  # type: ignore[arg-type]
    message = caught.value.message
    assert "\n" not in message and caught.value.exit_code == 2
    return message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=70))
def test_a_key_is_refused_exactly_when_it_breaks_the_rule(key: str) -> None:
    allowed = (1 <= len(key) <= 63 and all(c in KEY_CHARACTERS for c in key) and key[0] in KEY_ENDS
               and key[-1] in KEY_ENDS)
    if allowed:
        assert labelling.parse_labels({key: "v"}) == {key: "v"}
    else:
        assert "a key is 1 to 63 characters" in one_line_refusal({key: "v"})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_a_value_is_refused_exactly_when_it_breaks_the_rule(value: str) -> None:
    control = any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 or ord(c) in (0x2028, 0x2029) or 0xd800 <= ord(c) < 0xe000
                  for c in value)
    if len(value) <= 255 and not control:
        assert labelling.parse_labels([f"app={value}"]) == {"app": value}
    else:
        message = one_line_refusal([f"app={value}"])
        assert message.startswith("invalid label app: a value is 0 to 255 characters of UTF-8 text, no control "
                                  "characters")


@pytest.mark.parametrize(("raw", "said"), [
    (["app"], "invalid label 'app': expected KEY=VALUE"),
    (["=v"], "invalid label '': a key is 1 to 63"),
    (["-app=v"], "invalid label -app: a key is 1 to 63"),
    (["app.=v"], "invalid label app.: a key is 1 to 63"),
    (["my app=v"], "invalid label 'my app': a key is 1 to 63"),
    (["é=v"], "invalid label é: a key is 1 to 63"),
    ([f"{'k' * 64}=v"], f"invalid label {'k' * 64}: a key is 1 to 63"),
    (["app=a\nb"], "invalid label app: a value is 0 to 255 characters of UTF-8 text, no control characters (this "
                    "one has \\n)"),
    (["app=a\tb"], "(this one has \\t)"),
    (["app=a\x00b"], "(this one has \\x00)"),
    (["app=\udcff"], "(this one has the byte \\xff, which is not UTF-8)"),  # as os.fsdecode gives a byte 0xff
    (["app=\ud800"], "(this one has a lone surrogate \\ud800, which is not UTF-8)"),
    ([f"app={'v' * 256}"], "(this one has 256)"),
    (["app=1", "app=2"], "invalid label app: given twice (a key is given once)"),
    (["app=1", "app=1"], "given twice"),
    ([f"k{i}=v" for i in range(33)], "too many labels: at most 32"),
    ({"app": 1}, "invalid label 'app': keys and values are strings"),
    (42, "invalid labels 42: expected a mapping or KEY=VALUE strings"),
])
def test_each_bad_label_is_one_line_naming_it_and_the_rule(raw: object, said: str) -> None:
    assert said in one_line_refusal(raw)


def test_the_edges_of_the_rules_are_allowed() -> None:
    edge = {"a": "", "k" * 63: "v" * 255, "example.com/tier": "front", "A_1-b.c/D": "x=y", "emoji": "🍕 ok"}
    assert labelling.parse_labels(edge) == edge
    assert len(labelling.parse_labels([f"k{i}=v" for i in range(32)])) == 32
    assert labelling.parse_labels("app=web") == {"app": "web"} and labelling.parse_labels(None) == {}


@pytest.mark.parametrize(("raw", "said"), [
    ("x" * 257, "invalid description: at most 256 characters (this one has 257)"),
    ("two\nlines", "invalid description: UTF-8 text, no control characters (this one has \\n)"),
    ("a\x1bb", "(this one has \\x1b)"),
    (5, "invalid description 5: a string"),
])
def test_a_bad_description_is_one_line(raw: object, said: str) -> None:
    with pytest.raises(UsageError) as caught:
        labelling.parse_description(raw)
    assert said in caught.value.message and "\n" not in caught.value.message


def test_a_description_within_the_rules_is_kept() -> None:
    assert labelling.parse_description("x" * 256) == "x" * 256
    assert labelling.parse_description("l'été, à 20 °C") == "l'été, à 20 °C"
    assert labelling.parse_description(None) is None and labelling.parse_description("") == ""


def test_selectors_all_must_match() -> None:
    selectors = labelling.parse_selectors(["app=web", "tier=front"])
    assert labelling.matches({"app": "web", "tier": "front", "x": "y"}, selectors)
    assert not labelling.matches({"app": "web"}, selectors)
    assert not labelling.matches({"app": "web", "tier": "back"}, selectors)
    assert labelling.matches({"empty": ""}, {"empty": ""}) and not labelling.matches({}, {"empty": ""})
    with pytest.raises(UsageError):
        labelling.parse_selectors(["app=web", "app=db"])


def test_the_run_plan_takes_them_from_the_api_and_the_command_line_alike() -> None:
    from_api = RunPlan.build({"labels": {"app": "web"}, "description": "d"})
    from_cli = RunPlan.build({"labels": ["app=web"], "description": "d"})
    assert from_api.labels == from_cli.labels == {"app": "web"} and from_api.description == "d"
    plain = RunPlan.build({})
    assert plain.labels == {} and plain.description is None
    with pytest.raises(UsageError, match="invalid label app: given twice"):
        RunPlan.build({"labels": ["app=1", "app=2"]})


def test_the_run_options_type_names_them() -> None:
    from lanco.options.optiontypes import RunOptions

    assert {"labels", "description"} <= set(RunOptions.__annotations__)


# -- the record --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "labels", "description"), [
    ({"labels": {"a": "1"}, "description": "d"}, {"a": "1"}, "d"),
    ({}, {}, None),  # written before labels existed
    ({"labels": ["a=1"], "description": 5}, {}, None),
    ({"labels": {"a": 1}, "description": None}, {}, None),
    ({"labels": "a=1", "description": ["d"]}, {}, None),
    ({"labels": None}, {}, None),
])
def test_the_record_reads_damaged_labels_as_none(tmp_path: Path, spec: dict[str, object],
                                                 labels: dict[str, str], description: str | None) -> None:
    write_spec(str(tmp_path), {"run_id": "r", "argv": ["true"], **spec})
    read = read_spec(str(tmp_path))
    assert read is not None
    from lanco.state.record import apply_spec

    record = TaskRecord(NS, "t", "running")
    apply_spec(record, read)
    assert record.labels == labels and record.description == description
    assert labelling.spec_labels(read) == labels and labelling.spec_description(read) == description


# -- the views, on the fake cgroupfs ------------------------------------------------------------------------------


LABELS = {"web": {"app": "shop", "tier": "front"}, "busy": {"app": "shop", "tier": "back"}, "cold": {}}


def label(ns: FakeNamespace, task: str, labels: dict[str, str], description: str | None = None) -> None:
    state = ns.config.task_state_dir(task)
    spec = read_spec(state)
    assert spec is not None
    write_spec(state, {**spec, "labels": labels, "description": description})


@pytest.fixture
def shop(host: FakeHost, monkeypatch: pytest.MonkeyPatch, frozen_clock: None) -> FakeNamespace:
    ns = fake_namespace(host, "hybrid", monkeypatch)
    for task in TASKS:
        ns.add(task)
        label(ns, task.name, LABELS[task.name], "the web server" if task.name == "web" else None)
    ns.add_finished("build", "exited", "3")
    label(ns, "build", {"app": "shop", "kind": "batch"})
    ns.add_finished("lint", "exited", "5")
    label(ns, "lint", {"app": "shop", "kind": "batch"})
    ns.add_finished("old", "exited", "0")  # a record written before labels existed
    return ns


def run(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> str:
    assert main(list(argv)) == code
    out, err = capsys.readouterr()
    assert err == ""
    return out


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    return err


def test_status_shows_the_description_and_the_labels(shop: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    text = run(capsys, NS, "status", "web")
    assert "\n     command: httpd -X\n description: the web server\n      labels: app=shop,tier=front\n" in text
    plain = run(capsys, NS, "status", "cold")
    assert "labels" not in plain and "description" not in plain


def test_ls_long_ends_each_task_line_with_its_labels(shop: FakeNamespace,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    lines = run(capsys, NS, "ls", "-l", "--all").splitlines()
    assert " ├ build (exited, code 3)  app=shop,kind=batch" in lines
    assert " ├ web  app=shop,tier=front" in lines and " ├ cold (frozen)" in lines and " ├ old (exited, code 0)" in lines
    assert " ├ web" in run(capsys, NS, "ls").splitlines()  # without -l, no labels


def test_every_json_document_carries_the_same_labels(shop: FakeNamespace,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    status = json.loads(run(capsys, NS, "status", "--json", "web"))
    listed = {t["name"]: t for t in json.loads(run(capsys, NS, "ls", "--json", "--all"))["tasks"]}
    dumped = json.loads(run(capsys, NS, "dump"))["tasks"]
    frame = top.frame_data(top.build_frame(None, stats.sample_namespace(Namespace(NS), labels=True)))
    framed = {t["name"]: t for t in frame["tasks"]}
    for name in ("web", "busy", "cold"):
        expected = (LABELS[name], "the web server" if name == "web" else None)
        for document in (listed[name], dumped[name], framed[name]):
            assert (document["labels"], document["description"]) == expected, name
    assert (status["labels"], status["description"]) == (LABELS["web"], "the web server")
    # The text frames show no labels: their samples spare the record reads.
    assert all(t.labels == {} and t.description is None for t in stats.sample_namespace(Namespace(NS)).tasks)
    assert (listed["old"]["labels"], listed["old"]["description"]) == ({}, None)


def test_ls_selects_by_label(shop: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, NS, "ls", "-q", "--label", "app=shop") == "busy\nweb\n"
    assert run(capsys, NS, "ls", "-q", "--all", "--label", "app=shop", "--label", "kind=batch") == "build\nlint\n"
    assert run(capsys, NS, "ls", "-q", "--label", "app=none") == ""
    listed = json.loads(run(capsys, NS, "ls", "--json", "--label", "tier=front"))
    assert [t["name"] for t in listed["tasks"]] == ["web"]
    assert run(capsys, NS, "ls", "--label", "tier=back") == f"{NS}\n ├ busy\n │  → 201 sh -c while :; do :; done\n"
    assert "invalid label 'bad key'" in refused(capsys, NS, "ls", "--label", "bad key=1")


def test_the_api_selects_by_label(shop: FakeNamespace) -> None:
    ns = Namespace(NS)
    assert [t.name for t in ns.tasks(labels={"app": "shop"})] == ["build", "busy", "lint", "web"]
    assert [t.name for t in ns.tasks(labels=["kind=batch", "app=shop"])] == ["build", "lint"]
    assert [t.name for t in ns.tasks(labels={})] == [t.name for t in ns.tasks()]
    assert ns.tasks(labels={"app": "nothing"}) == []
    assert ns.task("web").record().labels == LABELS["web"]


def test_a_damaged_record_matches_no_selector(shop: FakeNamespace) -> None:
    spec = Path(shop.config.task_state_dir("build")) / "spec.json"
    spec.write_text("{not json")
    with pytest.raises(StateError):
        read_spec(str(spec.parent))
    assert [t.name for t in Namespace(NS).tasks(labels={"kind": "batch"})] == ["lint"]


def test_wait_by_label_exits_with_the_greatest_code(shop: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, NS, "wait", "--label", "kind=batch", code=5) == ""
    assert run(capsys, NS, "wait", "--label", "kind=batch", "--label", "app=none") == ""  # none: nothing failed
    old = Path(shop.config.task_state_dir("old"))
    write_spec(str(old), {**(read_spec(str(old)) or {}), "labels": {"kind": "batch"}})
    assert run(capsys, NS, "wait", "-t", "1", "--label", "kind=batch", code=5) == ""


@pytest.mark.parametrize(("argv", "said"), [
    (["stop", "--label", "app=shop", "web"], "stop: --label chooses the tasks itself: give it without TASK or --all"),
    (["stop", "--all", "--label", "app=shop"], "give it without TASK or --all"),
    (["stop", "--label", "app"], "invalid label 'app': expected KEY=VALUE"),
    (["wait", "--label", "app=shop", "web"], "wait: --label chooses the tasks itself: give it without TASK"),
    (["wait", "--label", "a=1", "--label", "a=2"], "invalid label a: given twice"),
    (["wait"], "wait: expected one TASK, --label KEY=VALUE, or --any/--all with several"),
    (["run", "--label=-x=1", "t", "true"], "invalid label -x: a key is 1 to 63 characters"),
    (["run", "--description", "a\nb", "t", "true"], "invalid description: UTF-8 text, no control characters"),
])
def test_selector_and_label_usage_errors(shop: FakeNamespace, capsys: pytest.CaptureFixture[str], argv: list[str],
                                         said: str) -> None:
    assert said in refused(capsys, NS, *argv)
    assert not os.path.exists(shop.config.task_state_dir("t"))


def test_stop_by_label_with_no_running_match_stops_nothing(shop: FakeNamespace,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, NS, "stop", "--label", "kind=batch") == ""  # finished ones only: as --all with none running


def test_render_keeps_labels_sorted_and_escaped() -> None:
    record = TaskRecord(NS, "t", "exited", argv=["true"], exit_code=0, labels={"z": "1", "a": "é\u200bx"},
                        description="tab-free ünïcode")
    data = render.record_data(record, cmdlines={})
    assert list(data["labels"]) == ["a", "z"] and data["description"] == "tab-free ünïcode"
    assert json.loads(render.status_json(record, cmdlines={}))["labels"] == {"a": "é\u200bx", "z": "1"}
    # A format character (zero-width space) is within the rules; the text views escape it, as every view does.
    assert " ├ t (exited, code 0)  a=é\\u200bx,z=1" in render.tree(NS, [record], long=True, cmdlines={})
