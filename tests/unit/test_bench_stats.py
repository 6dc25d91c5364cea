"""The benchmark's arithmetic (its measurements run on the real kernel, in ``python -m bench``, not here)."""

from __future__ import annotations

import math

from bench.compare import compare
from bench.phases import _growth_figures
from bench.stats import Figure, median, percentile, table


def test_median_and_nearest_rank_percentile() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert math.isnan(median([]))
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 95) == 95.0
    assert percentile([5.0], 95) == 5.0


def test_targets_apply_to_the_median() -> None:
    assert Figure("a", "a", "ms", samples=[1.0, 2.0, 100.0], target=3.0).met is True
    assert Figure("a", "a", "ms", samples=[4.0, 5.0, 1.0], target=3.0).met is False
    assert Figure("a", "a", "ms", samples=[4.0]).met is None
    assert Figure("a", "a", "ms", available=False, target=3.0).met is None
    assert Figure("a", "a", "ms", samples=[9.0], target=3.0, met_override=True).met is True


def test_table_marks_missed_targets_and_unavailable_figures() -> None:
    text = table([Figure("a", "fast", "ms", samples=[1.0], target=2.0, target_text="<= 2"),
                  Figure("b", "slow", "ms", samples=[3.0], target=2.0, target_text="<= 2"),
                  Figure("c", "absent", "ms", available=False, note="not here")])
    lines = text.splitlines()
    assert lines[2].endswith("ok") and lines[3].endswith("MISSED")
    assert "n/a" in lines[4] and lines[4].endswith("not here")


def test_growth_is_judged_against_linear() -> None:
    linear = _growth_figures([1, 100, 1000], {"ls": {1: 50.0, 100: 60.0, 1000: 150.0}})
    assert [f.met for f in linear] == [True]
    quadratic = _growth_figures([1, 100, 1000], {"ls": {1: 50.0, 100: 60.0, 1000: 1050.0}})
    assert [f.met for f in quadratic] == [False]
    assert _growth_figures([1, 20], {"ls": {1: 50.0, 20: 60.0}}) == []


def test_compare_puts_results_side_by_side() -> None:
    def document(value: float) -> dict[str, object]:
        figure = Figure("api.run", "API run", "ms", samples=[value, value + 1], target=3.0, target_text="<= 3")
        return {"info": {"loadavg_start": "0.1", "loadavg_end": "0.2", "seconds": 1.0},
                "figures": [figure.as_dict()]}

    text = compare([("before", document(9.0)), ("after", document(2.0))])
    assert "| API run | ms | <= 3 | 9.50 / 10.0 ✗ | 2.50 / 3.00 ✓ |" in text.splitlines()
