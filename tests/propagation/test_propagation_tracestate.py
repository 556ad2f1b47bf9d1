"""tracestate parsing and formatting (W3C Trace Context Level 2, section 3.3)."""

from __future__ import annotations

import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_observe.propagation import format_tracestate, parse_tracestate
from asgi_observe.propagation.tracestate import is_valid_tracestate_member

Entries = list[tuple[str, str]]


def parse(*lines: str) -> Entries:
    return parse_tracestate([line.encode("latin-1") for line in lines])


# rule: key = ( lcalpha / DIGIT ) 0*255( lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@" )
VALID_KEYS = [
    pytest.param("a", id="one-letter"),
    pytest.param("rojo", id="simple"),
    pytest.param("1abc", id="digit-first"),
    pytest.param("7", id="one-digit"),
    pytest.param("fw529a3039@dt", id="tenant-at-system"),
    pytest.param("1tenant@sys", id="digit-tenant"),
    pytest.param("a@1", id="digit-system"),
    pytest.param("a@b@c", id="several-at"),
    pytest.param("a@", id="empty-system"),
    pytest.param("a@" + "b" * 20, id="long-system"),
    pytest.param("a_-*/@z", id="every-special"),
    pytest.param("k" * 256, id="256-chars"),
]
INVALID_KEYS = [
    pytest.param("A", id="uppercase"),
    pytest.param("aB", id="uppercase-later"),
    pytest.param("_a", id="underscore-first"),
    pytest.param("-a", id="dash-first"),
    pytest.param("*a", id="star-first"),
    pytest.param("/a", id="slash-first"),
    pytest.param("@a", id="at-first"),
    pytest.param("k" * 257, id="257-chars"),
    pytest.param("a.b", id="dot"),
    pytest.param("a b", id="space-inside"),
    pytest.param("a\tb", id="tab-inside"),
    pytest.param("a:b", id="colon"),
    pytest.param("\xe4", id="latin-1"),
]
# rule: value = 0*255( chr ) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = printable minus "," "="
VALID_VALUES = [
    pytest.param("v", "v", id="one-char"),
    pytest.param("00f067aa0ba902b7", "00f067aa0ba902b7", id="hex"),
    pytest.param("t61rcWkgMzE", "t61rcWkgMzE", id="base64ish"),
    pytest.param(" v", " v", id="leading-space-is-part-of-value"),
    pytest.param("a b", "a b", id="inner-space"),
    pytest.param("v  ", "v", id="trailing-spaces-are-ows"),
    pytest.param(
        "!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~", "!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~", id="punct"
    ),
    pytest.param("x" * 256, "x" * 256, id="256-chars"),
]
INVALID_VALUES = [
    pytest.param("", id="empty"),
    pytest.param("x" * 257, id="257-chars"),
    pytest.param("a=b", id="equals"),
    pytest.param("a\tb", id="tab"),
    pytest.param("a\x7fb", id="del"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("\xe4", id="latin-1"),
]


@pytest.mark.parametrize("key", VALID_KEYS)
def test_valid_key_is_accepted(key: str) -> None:
    assert [(key, "v"), ("z", "1")] == parse(f"{key}=v,z=1")


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_invalid_key_discards_the_whole_tracestate(key: str) -> None:
    assert [] == parse(f"z=1,{key}=v")


@pytest.mark.parametrize(("value", "expected"), VALID_VALUES)
def test_valid_value_is_accepted(value: str, expected: str) -> None:
    assert [("k", expected), ("z", "1")] == parse(f"k={value},z=1")


@pytest.mark.parametrize("value", INVALID_VALUES)
def test_invalid_value_discards_the_whole_tracestate(value: str) -> None:
    assert [] == parse(f"z=1,k={value}")


LIST_CASES = [
    # rule: absent or empty headers give no entries
    pytest.param([], [], id="absent"),
    pytest.param([""], [], id="empty-header"),
    pytest.param([" , ,\t,"], [], id="only-empty-members"),
    # rule: empty (OWS-only) list members are allowed and skipped
    pytest.param(["a=1,,b=2"], [("a", "1"), ("b", "2")], id="empty-member"),
    pytest.param([",a=1, \t ,b=2,"], [("a", "1"), ("b", "2")], id="ows-members-and-edges"),
    pytest.param([" a=1 ,\tb=2\t"], [("a", "1"), ("b", "2")], id="ows-around-members"),
    # rule: all header lines are combined in order
    pytest.param(["a=1", "b=2"], [("a", "1"), ("b", "2")], id="two-lines"),
    pytest.param(["a=1", "", "b=2"], [("a", "1"), ("b", "2")], id="empty-middle-line"),
    pytest.param(["a=1,", ",b=2"], [("a", "1"), ("b", "2")], id="trailing-commas"),
    # rule: duplicate keys keep the left-most
    pytest.param(["a=1,b=2,a=3"], [("a", "1"), ("b", "2")], id="duplicate-same-line"),
    pytest.param(["a=1", "a=3"], [("a", "1")], id="duplicate-across-lines"),
    # rule: a member without "=" or with an empty key is invalid, discarding everything
    pytest.param(["a=1,b"], [], id="no-equals"),
    pytest.param(["a=1,=2"], [], id="empty-key"),
    pytest.param(["a=1", "b"], [], id="invalid-second-line"),
    pytest.param(["a =1"], [], id="space-before-equals"),
]


@pytest.mark.parametrize(("lines", "expected"), LIST_CASES)
def test_list_rules(lines: list[str], expected: Entries) -> None:
    assert expected == parse(*lines)


def members(count: int) -> str:
    return ",".join(f"k{i}=v" for i in range(count))


@pytest.mark.parametrize(
    ("header", "expected_count"),
    [
        pytest.param(members(32), 32, id="32-members"),
        pytest.param(members(33), 0, id="33-members-discarded"),
        pytest.param(
            members(16) + ",,, ," + members(16).replace("k", "j"), 32, id="32-with-empties"
        ),
        pytest.param(members(31) + ",k0=dup", 31, id="duplicate-counts-as-member"),
        pytest.param(members(32) + ",k0=dup", 0, id="33-with-duplicate-discarded"),
    ],
)
def test_at_most_32_members(header: str, expected_count: int) -> None:
    assert expected_count == len(parse(header))


def entry(key: str, size: int) -> tuple[str, str]:
    """An entry of exactly `size` characters (key, "=", value)."""
    return (key, "x" * (size - len(key) - 1))


TRUNCATION_CASES = [
    # rule: a tracestate of at most 512 characters is kept whole
    pytest.param([entry("a", 256), entry("b", 255)], ["a", "b"], id="exactly-512"),
    pytest.param([entry(f"k{i}", 15) for i in range(32)], [f"k{i}" for i in range(32)], id="32x15"),
    # rule: over 512, entries longer than 128 characters go first, right-most first
    pytest.param(
        [entry("a", 200), entry("b", 100), entry("c", 200), entry("d", 100)],
        ["a", "b", "d"],
        id="drop-right-most-long-entry-only",
    ),
    pytest.param(
        [entry("a", 256), entry("b", 256), entry("c", 256), entry("d", 50)],
        ["a", "d"],
        id="drop-long-entries-until-it-fits",
    ),
    pytest.param(
        [entry("a", 129), entry("b", 128), entry("c", 128), entry("d", 128)],
        ["b", "c", "d"],
        id="129-is-long-128-is-not",
    ),
    # rule: then entries are dropped from the end
    pytest.param(
        [entry(f"k{i}", 100) for i in range(6)],
        ["k0", "k1", "k2", "k3", "k4"],
        id="drop-from-end",
    ),
    pytest.param(
        [entry("a", 250), *[entry(f"k{i}", 100) for i in range(6)]],
        ["k0", "k1", "k2", "k3", "k4"],
        id="long-first-then-from-end",
    ),
]


@pytest.mark.parametrize(("entries", "kept"), TRUNCATION_CASES)
def test_over_512_characters_whole_entries_are_dropped(entries: Entries, kept: list[str]) -> None:
    header = ",".join(f"{k}={v}" for k, v in entries)
    result = parse(header)
    assert kept == [key for key, _ in result]
    assert len(format_tracestate(result)) <= 512
    assert format_tracestate(result) == format_tracestate(entries)


def test_input_beyond_32k_is_discarded_before_work() -> None:
    assert [] == parse("a=1," + " " * 33_000)


def test_format_joins_entries_in_order() -> None:
    assert "b=2,1a@x@y= v" == format_tracestate([("b", "2"), ("1a@x@y", " v")])


def test_format_of_nothing_is_empty() -> None:
    assert "" == format_tracestate([])


def test_format_accepts_any_iterable() -> None:
    assert "a=1,b=2" == format_tracestate(iter([("a", "1"), ("b", "2")]))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("a", "v", True),
        ("1a@b@c", " v", True),
        ("A", "v", False),
        ("a", "v ", False),
        ("a", "", False),
        ("a", "a,b", False),
        ("", "v", False),
        ("a", "é", False),
        ("k" * 257, "v", False),
    ],
)
def test_member_validation(key: str, value: str, expected: bool) -> None:
    assert expected == is_valid_tracestate_member(key, value)


KEY_FIRST = "abcdefghijklmnopqrstuvwxyz0123456789"
KEY_REST = KEY_FIRST + "_-*/@"
VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")

keys = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(KEY_FIRST),
    st.text(KEY_REST, max_size=20),
)
values = st.text(VALUE_CHARS, min_size=1, max_size=40).filter(lambda v: not v.endswith(" "))
entry_lists = st.lists(st.tuples(keys, values), max_size=32, unique_by=lambda kv: kv[0])


@given(entry_lists)
@example([("a", " " + "b")])
def test_format_then_parse_round_trips(entries: Entries) -> None:
    header = format_tracestate(entries)
    assert [(k, v) for k, v in entries if f"{k}={v}" in header.split(",")] == parse(header)
    if len(",".join(f"{k}={v}" for k, v in entries)) <= 512:
        assert entries == parse(header)


@given(entry_lists)
def test_truncation_keeps_an_ordered_subset_within_512(entries: Entries) -> None:
    kept = parse_tracestate([format_tracestate(entries).encode()])
    assert len(format_tracestate(kept)) <= 512
    assert kept == [e for e in entries if e in kept]


@given(st.binary(max_size=600))
@example(b"a=1,\x80=2")
@example(b"a=" + b"\xff")
def test_parse_never_raises_on_bytes(raw: bytes) -> None:
    result = parse_tracestate([raw])
    assert all(is_valid_tracestate_member(k, v) for k, v in result)


@given(st.lists(st.binary(max_size=60), max_size=8))
def test_parse_never_raises_on_header_lines(lines: list[bytes]) -> None:
    result = parse_tracestate(lines)
    assert len(result) <= 32


def test_100kb_header_is_fast() -> None:
    raw = b"a=" + b"x" * 100_000
    start = time.perf_counter()
    assert [] == parse_tracestate([raw])
    assert time.perf_counter() - start < 0.05


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param([members(10_000).encode()], id="one-line"),
        pytest.param([f"k{i}=v".encode() for i in range(10_000)], id="10000-lines"),
        pytest.param([b"a=1" + b"," * 30_000], id="30000-empty-members"),
    ],
)
def test_10000_members_parse_fast(lines: list[bytes]) -> None:
    start = time.perf_counter()
    result = parse_tracestate(lines)
    assert time.perf_counter() - start < 0.05
    assert len(result) <= 1
