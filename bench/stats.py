"""Figures and their summaries: median, p95, targets, the printed table and the JSON document."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return math.nan
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least ``q`` percent of the samples at or below it."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Figure:
    """One measured figure: its samples (or a single value), and the target its median must meet, if any."""

    key: str
    label: str
    unit: str
    samples: list[float] = field(default_factory=list)
    target: float | None = None
    target_text: str = ""
    note: str = ""
    available: bool = True
    met_override: bool | None = None

    @property
    def median(self) -> float:
        return median(self.samples)

    @property
    def p95(self) -> float:
        return percentile(self.samples, 95)

    @property
    def maximum(self) -> float:
        return max(self.samples) if self.samples else math.nan

    @property
    def met(self) -> bool | None:
        """True or False against the target, None when the figure has no target or was not measured."""
        if self.met_override is not None:
            return self.met_override
        if self.target is None or not self.available or not self.samples:
            return None
        return self.median <= self.target

    def as_dict(self) -> dict[str, Any]:
        def clean(value: float) -> float | None:
            return None if math.isnan(value) else round(value, 4)

        return {
            "key": self.key, "label": self.label, "unit": self.unit, "available": self.available,
            "n": len(self.samples), "median": clean(self.median) if self.available else None,
            "p95": clean(self.p95) if self.available else None,
            "max": clean(self.maximum) if self.available else None,
            "target": self.target, "target_text": self.target_text, "met": self.met, "note": self.note,
            "samples": [round(s, 4) for s in self.samples],
        }


def _number(value: float) -> str:
    if math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3f}"


def table(figures: list[Figure]) -> str:
    """A plain-text table: figure, n, median, p95, unit, target and verdict."""
    header = ("figure", "n", "median", "p95", "unit", "target", "")
    rows: list[tuple[str, ...]] = [header]
    for fig in figures:
        if not fig.available:
            rows.append((fig.label, "-", "n/a", "n/a", fig.unit, fig.target_text, fig.note))
            continue
        verdict = {True: "ok", False: "MISSED", None: ""}[fig.met]
        rows.append((fig.label, str(len(fig.samples)), _number(fig.median), _number(fig.p95), fig.unit,
                     fig.target_text, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].rjust(widths[2]),
                 row[3].rjust(widths[3]), row[4].ljust(widths[4]), row[5].ljust(widths[5]), row[6]]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
