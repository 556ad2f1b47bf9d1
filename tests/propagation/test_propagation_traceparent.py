"""traceparent parsing and formatting (W3C Trace Context Level 2, section 3.2)."""

from __future__ import annotations

import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_observe.propagation import TraceParent, format_traceparent, parse_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACE_ID = int(TRACE, 16)
PARENT_ID = int(PARENT, 16)
VALID = f"00-{TRACE}-{PARENT}-01"


def parsed(version: int = 0, flags: int = 1) -> TraceParent:
    return TraceParent(version, TRACE_ID, PARENT_ID, flags)


VALID_CASES = [
    # rule: version 00 matches exactly
    pytest.param([VALID], parsed(), id="v00-sampled"),
    pytest.param([f"00-{TRACE}-{PARENT}-00"], parsed(flags=0), id="v00-not-sampled"),
    pytest.param([f"00-{TRACE}-{PARENT}-03"], parsed(flags=3), id="v00-sampled-random"),
    pytest.param([f"00-{TRACE}-{PARENT}-ff"], parsed(flags=0xFF), id="v00-unknown-flags-kept-raw"),
    # rule: surrounding spaces and tabs are tolerated
    pytest.param([f"  {VALID}"], parsed(), id="leading-spaces"),
    pytest.param([f"{VALID} \t"], parsed(), id="trailing-space-tab"),
    pytest.param([f"\t{VALID}\t"], parsed(), id="tabs-both-sides"),
    # rule: a higher version parses the first four fields and ignores the rest
    pytest.param([f"01-{TRACE}-{PARENT}-01"], parsed(version=1), id="v01-exact-length"),
    pytest.param([f"cc-{TRACE}-{PARENT}-01-what-ever"], parsed(0xCC), id="vcc-extra-fields"),
    pytest.param([f"cc-{TRACE}-{PARENT}-09-"], parsed(0xCC, 9), id="vcc-trailing-dash"),
    pytest.param([f" fe-{TRACE}-{PARENT}-02-x\t"], parsed(0xFE, 2), id="vfe-with-ows"),
    # rule: ids are only invalid when all zero
    pytest.param([f"00-{'0' * 31}1-{'0' * 15}1-01"], TraceParent(0, 1, 1, 1), id="ids-of-one"),
    pytest.param(
        [f"00-{'f' * 32}-{'f' * 16}-01"], TraceParent(0, 2**128 - 1, 2**64 - 1, 1), id="max"
    ),
]

INVALID_CASES = [
    # rule: absent or empty
    pytest.param([], id="absent"),
    pytest.param([""], id="empty"),
    pytest.param([" \t "], id="whitespace-only"),
    # rule: several header lines or a comma-joined value restart the trace
    pytest.param([VALID, VALID], id="two-identical-lines"),
    pytest.param([VALID, ""], id="second-empty-line"),
    pytest.param([f"{VALID},{VALID}"], id="comma-joined"),
    pytest.param([f"{VALID}, {VALID}"], id="comma-space-joined"),
    pytest.param([f"cc-{TRACE}-{PARENT}-01-a,b"], id="higher-version-comma"),
    # rule: version 00 has no trailing data
    pytest.param([f"{VALID}-"], id="v00-trailing-dash"),
    pytest.param([f"{VALID}-extra"], id="v00-extra-field"),
    pytest.param([f"{VALID}0"], id="v00-extra-char"),
    pytest.param([f"{VALID}\n"], id="v00-trailing-newline"),
    pytest.param([f"{VALID}\r\n"], id="v00-trailing-crlf"),
    pytest.param([f"\n{VALID}"], id="leading-newline"),
    # rule: version ff is invalid; version must be two lowercase hex digits
    pytest.param([f"ff-{TRACE}-{PARENT}-01"], id="version-ff"),
    pytest.param([f"FF-{TRACE}-{PARENT}-01"], id="version-FF"),
    pytest.param([f"0A-{TRACE}-{PARENT}-01"], id="version-uppercase"),
    pytest.param([f"0g-{TRACE}-{PARENT}-01"], id="version-not-hex"),
    pytest.param([f"0-{TRACE}-{PARENT}-01"], id="version-one-digit"),
    pytest.param([f"000-{TRACE}-{PARENT}-01"], id="version-three-digits"),
    # rule: lowercase hex only in every field
    pytest.param([f"00-{TRACE.upper()}-{PARENT}-01"], id="trace-id-uppercase"),
    pytest.param([f"00-{TRACE}-{PARENT.upper()}-01"], id="parent-id-uppercase"),
    pytest.param([f"00-{TRACE}-{PARENT}-0A"], id="flags-uppercase"),
    pytest.param([f"00-{TRACE[:-1]}g-{PARENT}-01"], id="trace-id-not-hex"),
    pytest.param([f"00-{TRACE}-{PARENT[:-1]}_-01"], id="parent-id-underscore"),
    pytest.param([f"00-{TRACE}-{PARENT}-0x"], id="flags-not-hex"),
    pytest.param([f"00-{TRACE[:-1]} -{PARENT}-01"], id="space-inside-field"),
    pytest.param([f"00-{TRACE[:-1]}--{PARENT}-01"], id="dash-inside-trace-id"),
    pytest.param([f"00-+{TRACE[1:]}-{PARENT}-01"], id="sign-inside-trace-id"),
    # rule: all-zero trace-id or parent-id is invalid
    pytest.param([f"00-{'0' * 32}-{PARENT}-01"], id="zero-trace-id"),
    pytest.param([f"00-{TRACE}-{'0' * 16}-01"], id="zero-parent-id"),
    pytest.param([f"cc-{'0' * 32}-{PARENT}-01-x"], id="higher-version-zero-trace-id"),
    # rule: field lengths and dash positions
    pytest.param([f"00-{TRACE[:-1]}-{PARENT}-01"], id="trace-id-short"),
    pytest.param([f"00-{TRACE}0-{PARENT}-01"], id="trace-id-long"),
    pytest.param([f"00-{TRACE}-{PARENT}0-01"], id="parent-id-long"),
    pytest.param([f"00-{TRACE}-{PARENT}-1"], id="flags-one-digit"),
    pytest.param([f"00_{TRACE}_{PARENT}_01"], id="wrong-delimiter"),
    # rule: a higher version is at least 55 characters and has a dash after the flags
    pytest.param([f"01-{TRACE}-{PARENT}-0"], id="higher-version-short"),
    pytest.param([f"01-{TRACE}-{PARENT}-01x"], id="higher-version-no-dash-after-flags"),
    pytest.param([f"01-{TRACE}-{PARENT}-011-x"], id="higher-version-three-flag-digits"),
    pytest.param([f"01-{TRACE}-{PARENT}-01\n"], id="higher-version-trailing-newline"),
    # rule: prohibitively large headers are rejected before any work
    pytest.param([f"cc-{TRACE}-{PARENT}-01-{'a' * 500}"], id="over-512"),
    pytest.param([" " * 500 + VALID], id="over-512-with-padding"),
]


@pytest.mark.parametrize(("lines", "expected"), VALID_CASES)
def test_valid_traceparent_is_parsed(lines: list[str], expected: TraceParent) -> None:
    assert expected == parse_traceparent([line.encode() for line in lines])


@pytest.mark.parametrize("lines", INVALID_CASES)
def test_invalid_traceparent_restarts_the_trace(lines: list[str]) -> None:
    assert None is parse_traceparent([line.encode() for line in lines])


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(VALID.encode().replace(b"4", b"\xc3\xa4", 1), id="utf8-in-trace-id"),
        pytest.param(b"\x00" + VALID.encode(), id="nul"),
        pytest.param(b"\xff" * 55, id="high-bytes"),
        pytest.param(b"00-" + b"\xff" * 52, id="high-bytes-after-version"),
    ],
)
def test_non_ascii_traceparent_is_invalid(raw: bytes) -> None:
    assert None is parse_traceparent([raw])


@pytest.mark.parametrize(
    ("flags", "expected"),
    [(0x00, "00"), (0x01, "01"), (0x02, "02"), (0x03, "03"), (0x04, "00"), (0xFF, "03")],
)
def test_format_keeps_only_sampled_and_random_flags(flags: int, expected: str) -> None:
    assert f"00-{TRACE}-{PARENT}-{expected}" == format_traceparent(TRACE_ID, PARENT_ID, flags)


def test_format_pads_small_ids() -> None:
    assert f"00-{'0' * 31}1-{'0' * 15}2-01" == format_traceparent(1, 2, 1)


@pytest.mark.parametrize(
    ("trace_id", "span_id"), [(0, 1), (1, 0), (2**128, 1), (1, 2**64), (-1, 1)]
)
def test_format_rejects_invalid_ids(trace_id: int, span_id: int) -> None:
    with pytest.raises(ValueError, match="non-zero"):
        format_traceparent(trace_id, span_id, 1)


@given(
    trace_id=st.integers(1, 2**128 - 1),
    span_id=st.integers(1, 2**64 - 1),
    flags=st.integers(0, 255),
)
def test_format_then_parse_round_trips(trace_id: int, span_id: int, flags: int) -> None:
    header = format_traceparent(trace_id, span_id, flags)
    assert TraceParent(0, trace_id, span_id, flags & 0x03) == parse_traceparent([header.encode()])


@given(st.binary(max_size=700))
@example(b"00-" + b"0" * 52)
@example(b"-" * 55)
@example(b"ff" + b"-" * 60)
def test_parse_never_raises_on_bytes(raw: bytes) -> None:
    result = parse_traceparent([raw])
    assert result is None or isinstance(result, TraceParent)


@given(st.lists(st.binary(max_size=80), max_size=5))
def test_parse_never_raises_on_header_lines(lines: list[bytes]) -> None:
    result = parse_traceparent(lines)
    assert result is None or len(lines) == 1


HEX = "0123456789abcdef"
DAMAGE = HEX + "ABCDEFg-_ +\t\n,"


@st.composite
def near_valid_traceparents(draw: st.DrawFn) -> str:
    """Valid traceparents of several versions, half of them with one field damaged."""
    fields = [draw(st.text(HEX, min_size=n, max_size=n)) for n in (32, 16, 2)]
    if draw(st.booleans()):
        index = draw(st.integers(0, 2))
        size = len(fields[index])
        fields[index] = draw(st.text(DAMAGE, min_size=size - 1, max_size=size + 1))
    version = draw(st.sampled_from(["00", "01", "cc", "ff", "0A"]))
    tail = draw(st.sampled_from(["", "-", "-x", "x", "\n", " ", ",00"]))
    return draw(st.sampled_from(["", " ", "\t"])) + "-".join([version, *fields]) + tail


@given(near_valid_traceparents())
@example(VALID)
@example(f"cc-{TRACE}-{PARENT}-01-x")
def test_a_parsed_traceparent_reformats_to_its_own_fields(header: str) -> None:
    result = parse_traceparent([header.encode()])
    if result is not None:
        stripped = header.strip(" \t")
        assert stripped[3:52] == format_traceparent(result.trace_id, result.parent_id, 0)[3:52]
        assert result.version != 0xFF


def test_huge_header_is_rejected_fast() -> None:
    raw = b"00-" + b"a" * 100_000
    start = time.perf_counter()
    for _ in range(10):
        assert None is parse_traceparent([raw])
    assert time.perf_counter() - start < 0.05


def test_many_header_lines_are_rejected_fast() -> None:
    lines = [VALID.encode()] * 10_000
    start = time.perf_counter()
    assert None is parse_traceparent(lines)
    assert time.perf_counter() - start < 0.05
