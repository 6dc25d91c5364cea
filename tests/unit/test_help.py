"""Every command's ``--help``, asked through lanco's own entry as a user would: each option and positional argument
has a text, and what the summary (``lanco --help``, cli.USAGE) says of the options agrees with what they are.

The help is read as printed, not from the parsers, so a command parsed by hand (check) is held to the same rule,
and a command added to the dispatch table is walked without this file changing."""

from __future__ import annotations

import re

import pytest

from lanco.cli import COMMANDS, USAGE, main

HELP_FLAGS = ("--help", "-h")
EVERY_HELP = [["--help"], ["ls", "--help"], ["restore", "--help"],
              *(["testns", command, "--help"] for command in sorted(COMMANDS))]
"""``lanco --help``, ``lanco ls --help`` (the namespaces), ``lanco restore --help`` (after a boot) and
``lanco NAMESPACE COMMAND --help`` for every command."""


def help_of(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """What ``lanco ARGV`` prints, checked to have succeeded in silence on stderr."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse, and lanco --help, exit themselves
        code = exc.code  # type: ignore[assignment]
    out, err = capsys.readouterr()
    assert code == 0 and err == "", (argv, code, err)
    return out


def entries(text: str) -> list[tuple[str, str]]:
    """(invocation, text) of every option and argument of a help in argparse's layout: under a heading ending with
    a colon, an entry starts two spaces in; its text follows two spaces or more further on, or on the lines below,
    indented deeper."""
    found: list[list[str]] = []
    in_section = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            in_section = line.endswith(":") and not line.startswith("usage:")
            continue
        if not in_section:
            continue  # the usage lines' continuation
        if len(line) - len(line.lstrip()) == 2:
            invocation, _, said = line.strip().partition("  ")
            found.append([invocation, said.strip()])
        elif found:
            found[-1][1] = f"{found[-1][1]} {line.strip()}".strip()
    return [(invocation, said) for invocation, said in found]


@pytest.mark.parametrize("argv", EVERY_HELP, ids=" ".join)
def test_every_option_and_argument_has_a_text(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    shown = entries(help_of(capsys, argv))
    assert any(invocation.startswith("-h, --help") for invocation, _ in shown), shown  # the help was read
    silent = [invocation for invocation, said in shown if not said]
    assert not silent, f"lanco {' '.join(argv)}: no help text for {silent}"


@pytest.mark.parametrize("flag", HELP_FLAGS)
def test_check_has_a_help_of_its_own(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    shown = dict(entries(help_of(capsys, ["testns", "check", flag])))
    assert set(shown) == {"TASK", "-h, --help"}


def test_the_walk_sees_what_is_missing() -> None:
    """The reader of the help finds an entry without text wherever argparse puts one."""
    printed = ("usage: lanco NAMESPACE x [-h] [-a] [--long-name VALUE] task\n\npositional arguments:\n  task\n\n"
               "options:\n  -h, --help            show this help message and exit\n  -a\n"
               "  --long-name VALUE\n                        said on the next line\n")
    assert entries(printed) == [("task", ""), ("-h, --help", "show this help message and exit"), ("-a", ""),
                                ("--long-name VALUE", "said on the next line")]


def usage_forms(invocation: str) -> list[str]:
    """``-c CMD, --exit-command CMD`` as its forms, with argparse's ``{a,b}`` choices spelled ``a|b`` as in USAGE."""
    return [re.sub(r"\{([^}]*)\}", lambda m: m[1].replace(",", "|"), form) for form in invocation.split(", ")]


@pytest.mark.parametrize("argv", EVERY_HELP[1:], ids=" ".join)
def test_the_summary_names_every_option_as_its_help_does(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """lanco --help names each option of each command by one of its names, with the value it takes."""
    missing = []
    for invocation, _ in entries(help_of(capsys, argv)):
        if not invocation.startswith("-") or invocation.startswith("-h, --help"):
            continue
        if not any(re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", USAGE) for form in usage_forms(invocation)):
            missing.append(invocation)
    assert not missing, f"lanco {' '.join(argv)}: cli.USAGE does not say {missing}"
