"""baggage parsing and formatting (W3C Baggage, section 3)."""

from __future__ import annotations

import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_observe.propagation import BaggageMember, format_baggage, parse_baggage
from asgi_observe.propagation.baggage import MAX_BAGGAGE_INPUT

M = BaggageMember


def parse(*lines: str) -> list[BaggageMember]:
    return parse_baggage([line.encode("latin-1") for line in lines])


KEY_CASES = [
    # rule: keys are RFC 7230 tokens, taken literally (never percent-decoded)
    pytest.param("userId", "userId", id="simple"),
    pytest.param("!#$%&'*+-.^_`|~09AZaz", "!#$%&'*+-.^_`|~09AZaz", id="every-tchar"),
    pytest.param("k%20", "k%20", id="percent-is-literal"),
    pytest.param("a+b", "a+b", id="plus-is-literal"),
    pytest.param("  k \t", "k", id="ows-trimmed"),
]
INVALID_KEYS = [
    pytest.param("", id="empty"),
    pytest.param("a b", id="space-inside"),
    pytest.param("a/b", id="slash"),
    pytest.param("a@b", id="at"),
    pytest.param("(k)", id="parens"),
    pytest.param('"k"', id="quotes"),
    pytest.param("k:", id="colon"),
    pytest.param("\xe4", id="latin-1"),
]
VALUE_CASES = [
    # rule: values are RFC 3986 percent-decoded as UTF-8
    pytest.param("alice", "alice", id="plain"),
    pytest.param("DF%2028", "DF 28", id="space-escape"),
    pytest.param("a+b", "a+b", id="plus-is-literal-plus"),
    pytest.param("%2B", "+", id="escaped-plus"),
    pytest.param("%E2%82%AC", "\u20ac", id="utf8-upper"),
    pytest.param("%e2%82%ac", "\u20ac", id="utf8-lower"),
    pytest.param("%2c%3B%22%5C%25", ',;"\\%', id="escaped-delimiters"),
    pytest.param("%FF", "\ufffd", id="invalid-utf8-is-replacement-char"),
    pytest.param("%E2%82", "\ufffd", id="truncated-utf8"),
    pytest.param("a%zz", "a%zz", id="bad-escape-is-literal"),
    pytest.param("100%", "100%", id="lone-percent"),
    pytest.param("%4", "%4", id="short-escape"),
    pytest.param("%00", "\x00", id="nul-escape"),
    # rule: a value may hold "="
    pytest.param("a=b==", "a=b==", id="equals"),
    # rule: values may be empty; surrounding OWS is trimmed
    pytest.param("", "", id="empty"),
    pytest.param(" \t v \t", "v", id="ows-trimmed"),
    pytest.param("%20v%20", " v ", id="escaped-spaces-kept"),
]
INVALID_VALUES = [
    pytest.param("a b", id="space-inside"),
    pytest.param('"v"', id="dquote"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("a\x7f", id="del"),
    pytest.param("a\x01", id="control"),
    pytest.param("\xe4", id="raw-latin-1"),
]


@pytest.mark.parametrize(("raw", "key"), KEY_CASES)
def test_valid_key_is_taken_literally(raw: str, key: str) -> None:
    assert [M(key, "v", ""), M("z", "1", "")] == parse(f"{raw}=v,z=1")


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_invalid_key_drops_that_member_only(key: str) -> None:
    assert [M("a", "1", ""), M("z", "1", "")] == parse(f"a=1,{key}=v,z=1")


@pytest.mark.parametrize(("raw", "value"), VALUE_CASES)
def test_value_is_percent_decoded(raw: str, value: str) -> None:
    assert [M("k", value, ""), M("z", "1", "")] == parse(f"k={raw},z=1")


@pytest.mark.parametrize("value", INVALID_VALUES)
def test_invalid_value_drops_that_member_only(value: str) -> None:
    assert [M("a", "1", ""), M("z", "1", "")] == parse(f"a=1,k={value},z=1")


PROPERTY_CASES = [
    # rule: properties after the first ";" are kept as raw text, OWS trimmed at the edges
    pytest.param("k=v;p", M("k", "v", "p"), id="key-only"),
    pytest.param("k=v;p=1", M("k", "v", "p=1"), id="key-value"),
    pytest.param("k=v;p1;p2=x;p3", M("k", "v", "p1;p2=x;p3"), id="several"),
    pytest.param("k=v ; p1 = x ; p2", M("k", "v", "p1 = x ; p2"), id="ows-kept-inside"),
    pytest.param("k=%20;p=%20", M("k", " ", "p=%20"), id="property-value-not-decoded"),
    pytest.param("k=v;p=", M("k", "v", "p="), id="empty-property-value"),
    pytest.param("k=;p", M("k", "", "p"), id="empty-value-with-property"),
    pytest.param("k=v;p=a=b", M("k", "v", "p=a=b"), id="equals-in-property-value"),
]
INVALID_PROPERTIES = [
    pytest.param("k=v;", id="trailing-semicolon"),
    pytest.param("k=v;;p", id="empty-property"),
    pytest.param("k=v;=x", id="empty-property-key"),
    pytest.param("k=v;p q", id="space-in-property-key"),
    pytest.param("k=v;p=a b", id="space-in-property-value"),
    pytest.param('k=v;p="x"', id="dquote-in-property-value"),
    pytest.param("k=v;(p)", id="non-token-property-key"),
]


@pytest.mark.parametrize(("raw", "member"), PROPERTY_CASES)
def test_properties_are_kept(raw: str, member: BaggageMember) -> None:
    assert [member] == parse(raw)


@pytest.mark.parametrize("raw", INVALID_PROPERTIES)
def test_invalid_properties_drop_that_member_only(raw: str) -> None:
    assert [M("a", "1", "")] == parse(f"a=1,{raw}")


LIST_CASES = [
    # rule: absent, empty and OWS-only members give nothing and are skipped
    pytest.param([], [], id="absent"),
    pytest.param([""], [], id="empty"),
    pytest.param([" , ,\t"], [], id="only-empty-members"),
    pytest.param(["a=1,,b=2"], [M("a", "1", ""), M("b", "2", "")], id="empty-member"),
    # rule: every baggage header line is combined in order
    pytest.param(["a=1", "b=2"], [M("a", "1", ""), M("b", "2", "")], id="two-lines"),
    pytest.param(
        ["userId =   alice", "serverNode = DF%2028, isProduction = false"],
        [M("userId", "alice", ""), M("serverNode", "DF 28", ""), M("isProduction", "false", "")],
        id="spec-example",
    ),
    # rule: an invalid member is dropped alone
    pytest.param(["a=1,novalue,b=2"], [M("a", "1", ""), M("b", "2", "")], id="no-equals"),
    pytest.param(["a=1", "bad key=1", "b=2"], [M("a", "1", ""), M("b", "2", "")], id="bad-line"),
    # rule: duplicates are kept in order (OpenTelemetry's context keeps the last)
    pytest.param(["a=1,a=2"], [M("a", "1", ""), M("a", "2", "")], id="duplicates"),
]


@pytest.mark.parametrize(("lines", "expected"), LIST_CASES)
def test_list_rules(lines: list[str], expected: list[BaggageMember]) -> None:
    assert expected == parse(*lines)


def test_at_most_64_members_are_kept() -> None:
    header = ",".join(f"k{i}=v" for i in range(70))
    assert [f"k{i}" for i in range(64)] == [m.key for m in parse(header)]


def test_invalid_members_do_not_count_towards_64() -> None:
    header = ",".join(f"k{i}=v,bad key=v" for i in range(64))
    assert 64 == len(parse(header))


def test_at_most_8192_bytes_dropping_whole_members() -> None:
    big = "b=" + "x" * 8000
    header = f"a=1,{big},c={'y' * 200},d=2"
    kept = parse(header)
    assert ["a", "b", "d"] == [m.key for m in kept]
    assert len(format_baggage(kept)) <= 8192


def test_exactly_8192_bytes_are_kept_one_more_is_dropped() -> None:
    first = "a=" + "x" * 8186  # 8188 bytes
    assert ["a", "b"] == [m.key for m in parse(f"{first},b=1")]  # 8188 + 4 = 8192
    assert ["a"] == [m.key for m in parse(f"{first},b=12")]  # 8193
    assert 8192 == len(format_baggage(parse(f"{first},b=1")))


def test_input_is_cut_at_a_member_boundary_before_work() -> None:
    filler = ",".join(["bad key=v"] * (MAX_BAGGAGE_INPUT // 10 + 10))
    header = f"a=1,{filler},late=1"
    assert [M("a", "1", "")] == parse(header)


def test_cut_never_keeps_a_partial_member() -> None:
    header = "a=1," + " " * (MAX_BAGGAGE_INPUT - 6) + ",b=" + "x" * 100
    assert [M("a", "1", "")] == parse(header)


ENCODING_CASES = [
    # rule: only what is not a baggage-octet is escaped, plus "%" itself
    pytest.param("alice", "alice", id="plain"),
    pytest.param("DF 28", "DF%2028", id="space"),
    pytest.param('"q"', "%22q%22", id="dquote"),
    pytest.param("a,b", "a%2Cb", id="comma"),
    pytest.param("a;b", "a%3Bb", id="semicolon"),
    pytest.param("a\\b", "a%5Cb", id="backslash"),
    pytest.param("100%", "100%25", id="percent"),
    pytest.param("\u20ac", "%E2%82%AC", id="non-ascii-utf8"),
    pytest.param("\x00\n\x7f", "%00%0A%7F", id="controls"),
    pytest.param("a+b=c/d?e&f:g@h", "a+b=c/d?e&f:g@h", id="safe-punctuation-kept"),
    pytest.param("", "", id="empty"),
]


@pytest.mark.parametrize(("value", "encoded"), ENCODING_CASES)
def test_format_percent_encodes_only_what_it_must(value: str, encoded: str) -> None:
    assert f"k={encoded}" == format_baggage([M("k", value, "")])


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        pytest.param(M("k", "v", "p1;p2=x"), "k=v;p1;p2=x", id="properties"),
        pytest.param(M("bad key", "v", ""), "", id="invalid-key"),
        pytest.param(M("", "v", ""), "", id="empty-key"),
        pytest.param(M("k", "v", "p q"), "", id="invalid-properties"),
        pytest.param(M("k", "v", "p=\u20ac"), "", id="non-ascii-properties"),
    ],
)
def test_format_members(member: BaggageMember, expected: str) -> None:
    assert expected == format_baggage([member])


def test_format_keeps_64_members_and_8192_bytes() -> None:
    many = [M(f"k{i}", "v", "") for i in range(70)]
    assert 64 == format_baggage(many).count(",") + 1
    big = [M("a", "1", ""), M("b", "x" * 8190, ""), M("c", "2", "")]
    assert "a=1,c=2" == format_baggage(big)


tokens = st.text(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    min_size=1,
    max_size=12,
)
octets = st.text("".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\'), max_size=8)
properties = st.lists(
    st.one_of(tokens, st.builds(lambda k, v: f"{k}={v}", tokens, octets)), max_size=3
).map(";".join)
members = st.builds(BaggageMember, tokens, st.text(max_size=30), properties)


@given(st.lists(members, max_size=20))
@example([M("k", " a+b%20\u20ac\ufffd ", "p")])
@example([M("k", "\x00", "")])
def test_format_then_parse_round_trips(baggage: list[BaggageMember]) -> None:
    assert baggage == parse_baggage([format_baggage(baggage).encode()])


@given(st.binary(max_size=600))
@example(b"k=%")
@example(b"k=%\xff")
@example(b"k=v;\xff")
def test_parse_never_raises_on_bytes(raw: bytes) -> None:
    for member in parse_baggage([raw]):
        assert format_baggage([member])


@given(st.lists(st.binary(max_size=60), max_size=8))
def test_parse_never_raises_on_header_lines(lines: list[bytes]) -> None:
    assert len(parse_baggage(lines)) <= 64


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"k=" + b"%41" * 33_000, id="100kb-escapes"),
        pytest.param(b"x," * 50_000, id="100kb-invalid-members"),
        pytest.param(b"k=v;" + b"p;" * 50_000, id="100kb-properties"),
        pytest.param(b"a=1," + b" " * 100_000, id="100kb-spaces"),
    ],
)
def test_100kb_header_is_fast(raw: bytes) -> None:
    start = time.perf_counter()
    parse_baggage([raw])
    assert time.perf_counter() - start < 0.05
