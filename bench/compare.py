"""Side by side medians of several ``--json`` results: ``python -m bench.compare NAME=FILE [NAME=FILE ...]``.

Prints a Markdown table (figure, unit, target, then median / p95 per result), as kept in bench/RESULTS.md.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _cell(figure: dict[str, Any] | None) -> str:
    if figure is None:
        return "-"
    if not figure["available"] or figure["median"] is None:
        return "n/a"
    verdict = {True: " ✓", False: " ✗", None: ""}[figure["met"]]
    median, p95 = figure["median"], figure["p95"]
    if figure["n"] <= 1 or median == p95:
        return f"{_num(median)}{verdict}"
    return f"{_num(median)} / {_num(p95)}{verdict}"


def _num(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def compare(named: list[tuple[str, dict[str, Any]]]) -> str:
    order: list[str] = []
    labels: dict[str, tuple[str, str, str]] = {}
    for _, document in named:
        for figure in document["figures"]:
            if figure["key"] not in labels:
                order.append(figure["key"])
                labels[figure["key"]] = (figure["label"], figure["unit"], figure["target_text"])
    header = ["figure", "unit", "target", *(name for name, _ in named)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in order:
        label, unit, target = labels[key]
        cells = []
        for _, document in named:
            found = next((f for f in document["figures"] if f["key"] == key), None)
            cells.append(_cell(found))
        lines.append("| " + " | ".join([label, unit, target or "", *cells]) + " |")
    loads = ", ".join(f"{name}: load {doc['info'].get('loadavg_start')} -> {doc['info'].get('loadavg_end')}, "
                      f"{doc['info'].get('seconds')} s" for name, doc in named)
    return "\n".join(lines) + f"\n\nmedian / p95; ✓ target met, ✗ missed. {loads}\n"


def main(argv: list[str]) -> int:
    named = []
    for arg in argv:
        name, sep, path = arg.partition("=")
        if not sep:
            sys.stderr.write("usage: python -m bench.compare NAME=FILE [NAME=FILE ...]\n")
            return 2
        with open(path, encoding="utf-8") as f:
            named.append((name, json.load(f)))
    sys.stdout.write(compare(named))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
