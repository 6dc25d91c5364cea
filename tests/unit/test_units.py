"""lanco.options.units: sizes and durations as a user types them; anything else is a UsageError, never a crash."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lanco.errors import UsageError
from lanco.options.units import MAX, format_size, parse_duration, parse_size

KIB, MIB, GIB, TIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
KELVIN_SIGN = "\u212a"  # case-folds to k under re.IGNORECASE: see test_size_kelvin_sign_is_a_usage_error


@pytest.mark.parametrize(("text", "value"), [
    ("512K", 512 * KIB), ("64M", 64 * MIB), ("2G", 2 * GIB), ("1T", TIB), ("4096", 4096), ("1", 1),
    ("64m", 64 * MIB), ("1KiB", KIB), ("1kib", KIB), ("3MB", 3 * MIB), ("7B", 7), (" 64M ", 64 * MIB),
    ("max", MAX), ("MAX", MAX), (" max ", MAX), ("infinity", MAX),
])
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", [
    "", " ", "-1", "-64M", "0", "0K", "00", "1X", "1P", "64 M", "1.5G", "M", "K64", "64MM", "1e6", "0x10",
    "max1", "garbage", "+5", "5KiBB", "1\x00",
])
def test_size_refusals(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_size(text, what="memory limit")
    assert caught.value.message.startswith(f"invalid memory limit {text!r}: ")
    assert caught.value.exit_code == 2


def test_zero_size_says_why() -> None:
    with pytest.raises(UsageError, match="must be greater than zero"):
        parse_size("0M")


def test_size_kelvin_sign_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_size("1" + KELVIN_SIGN)


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0), ("1.5s", 1.5), ("10", 10.0),
    ("0.5", 0.5), (" 3s ", 3.0), ("1ms", 0.001),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [
    "", "0", "0s", "0.0ms", "-1s", "-5", "5x", "5 s", "s", "1.s", ".5s", "1,5s", "5S", "5M", "5sec", "1e3",
    "inf", "nan", "1h30m",
])
def test_duration_refusals(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text, what="timeout")
    assert caught.value.message.startswith(f"invalid timeout {text!r}: ")


def test_duration_too_large_is_refused() -> None:
    with pytest.raises(UsageError):
        parse_duration("1" + "0" * 400 + "s")


SIZE_UNITS = [("", 1), ("K", KIB), ("M", MIB), ("G", GIB), ("T", TIB), ("k", KIB), ("g", GIB),
              ("KiB", KIB), ("MB", MIB), ("B", 1)]


@given(st.integers(min_value=1, max_value=10**15), st.sampled_from(SIZE_UNITS))
def test_size_scales_by_its_unit(n: int, unit: tuple[str, int]) -> None:
    suffix, factor = unit
    assert parse_size(f"{n}{suffix}") == n * factor


@given(st.integers(min_value=0, max_value=3650), st.sampled_from(["ms", "s", "m", "h", "d", ""]))
def test_duration_scales_by_its_unit(n: int, unit: str) -> None:
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "": 1}[unit]
    if n == 0:
        with pytest.raises(UsageError):
            parse_duration(f"{n}{unit}")
    else:
        assert parse_duration(f"{n}{unit}") == pytest.approx(n * factor)


_SIZE_LIKE = st.builds(lambda sign, digits, unit: sign + digits + unit,
                       st.sampled_from(["", "-", "+", " "]), st.text(alphabet="0123456789.", max_size=6),
                       st.text(alphabet="KMGTkmgtiIbB ms", max_size=3))


@given(st.one_of(st.text(max_size=12), _SIZE_LIKE))
def test_size_accepts_or_raises_usage_error(text: str) -> None:
    assume(KELVIN_SIGN not in text)  # the known bug above
    try:
        value = parse_size(text)
    except UsageError:
        return
    assert value == MAX or value > 0


@given(st.one_of(st.text(max_size=12), _SIZE_LIKE))
def test_duration_accepts_or_raises_usage_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except UsageError:
        return
    assert value > 0 and math.isfinite(value)


@pytest.mark.parametrize(("value", "text"), [
    (None, "-"), (MAX, "max"), (0, "0B"), (1023, "1023B"), (KIB, "1.0K"), (1536, "1.5K"), (64 * MIB, "64.0M"),
    (3 * GIB, "3.0G"), (2 * TIB, "2048.0G"),
])
def test_format_size(value: int | None, text: str) -> None:
    assert format_size(value) == text


@settings(max_examples=1000, deadline=None)
@given(text=st.one_of(st.from_regex(r"\A\s?[0-9]{0,3}(\.[0-9]{0,2})?(ms|s|m|h|d|x|sm|)?\s?\Z"),
                      st.text(alphabet="0123456789.msdh ²٣\t", max_size=8), st.text(max_size=6)))
def test_durations_are_read_by_hand_as_their_grammar_reads_them(text: str) -> None:
    import re

    from lanco.options.units import _DURATION, split_duration

    match = re.fullmatch(_DURATION, text.strip(), re.ASCII)
    assert split_duration(text) == (None if match is None else (match.group(1), match.group(2))), text
