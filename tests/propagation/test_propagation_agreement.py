"""Agreement with OpenTelemetry's reference propagators, and each known disagreement.

Where the W3C specs and OpenTelemetry Python agree, our propagators give the same
result (Hypothesis properties). Every place they differ has its own test showing both
behaviours; docs/propagation.md lists them.
"""

from __future__ import annotations

import string

from hypothesis import example, given
from hypothesis import strategies as st
from opentelemetry import baggage, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator as OTelBaggage
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator as OTelTC
from opentelemetry.trace.span import TraceState

from asgi_observe.propagation import (
    BaggageValue,
    W3CBaggagePropagator,
    W3CTraceContextPropagator,
    context_from_w3c,
)

OTEL_TC = OTelTC()
OTEL_BAGGAGE = OTelBaggage()
OURS_TC = W3CTraceContextPropagator()
OURS_BAGGAGE = W3CBaggagePropagator()

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TP = f"00-{TRACE}-{PARENT}-01"


def span_of(context: Context) -> tuple[int, int, bool, int, dict[str, str]] | None:
    span_context = trace.get_current_span(context).get_span_context()
    if not span_context.is_valid:
        return None
    return (
        span_context.trace_id,
        span_context.span_id,
        span_context.is_remote,
        span_context.trace_flags & 0x03,
        dict(span_context.trace_state),
    )


def both_tc(carrier: dict[str, object]) -> tuple[object, object]:
    return span_of(OURS_TC.extract(carrier)), span_of(OTEL_TC.extract(carrier))


def both_baggage(carrier: dict[str, object]) -> tuple[object, object]:
    ours = baggage.get_all(OURS_BAGGAGE.extract(carrier, Context()))
    otel = baggage.get_all(OTEL_BAGGAGE.extract(carrier, Context()))
    return dict(ours), dict(otel)


# -- traceparent ---------------------------------------------------------------------

HEX = "0123456789abcdef"
DAMAGE = HEX + "ABCDEFg-_ +\t"


@st.composite
def traceparents(draw: st.DrawFn) -> str:
    """Valid traceparents of several versions, half of them with one field damaged."""
    fields = [draw(st.text(HEX, min_size=n, max_size=n)) for n in (32, 16, 2)]
    if draw(st.booleans()):
        index = draw(st.integers(0, 2))
        size = len(fields[index])
        if draw(st.booleans()):
            fields[index] = "0" * size
        else:
            fields[index] = draw(st.text(DAMAGE, min_size=size - 1, max_size=size + 1))
    version = draw(st.sampled_from(["00", "01", "cc", "fe", "ff", "0A", "0g"]))
    tail = draw(st.sampled_from(["", "", "-", "-x-y", "x", " ", "\t"]))
    lead = draw(st.sampled_from(["", " ", "\t "]))
    return lead + "-".join([version, *fields]) + tail


@given(traceparents())
@example(TP)
@example(f"cc-{TRACE}-{PARENT}-01-x")
@example(f"00-{'0' * 32}-{PARENT}-01")
def test_traceparent_agrees_with_opentelemetry(header: str) -> None:
    ours, otel = both_tc({"traceparent": header, "tracestate": "a=1"})
    assert otel == ours


OTEL_KEY = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_\-*/]{0,20}", fullmatch=True),
    st.from_regex(r"[a-z0-9][a-z0-9_\-*/]{0,10}@[a-z][a-z0-9_\-*/]{0,13}", fullmatch=True),
)
VALUE = st.from_regex(
    r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,20}[\x21-\x2b\x2d-\x3c\x3e-\x7e]", fullmatch=True
)
INVALID_MEMBER = st.sampled_from(["Upper=1", "k=a=b", "k=", "=v", "novalue", "k=\x7f"])


@given(
    st.lists(st.tuples(OTEL_KEY, VALUE), max_size=12, unique_by=lambda kv: kv[0]),
    st.lists(INVALID_MEMBER, max_size=1),
    st.integers(0, 3),
)
def test_tracestate_agrees_with_opentelemetry(
    entries: list[tuple[str, str]], invalid: list[str], split: int
) -> None:
    members = [f"{k}={v}" for k, v in entries]
    if len(",".join(members)) > 512:
        return  # truncation is a documented disagreement
    members[split:split] = invalid
    lines = [",".join(members[:split]), " , ".join(members[split:])]
    ours, otel = both_tc({"traceparent": TP, "tracestate": lines})
    assert otel == ours


def test_tracestate_inject_agrees_with_opentelemetry() -> None:
    state = TraceState([("rojo", PARENT), ("congo", "t61rcWkgMzE")])
    span_context = trace.SpanContext(
        int(TRACE, 16), int(PARENT, 16), True, trace.TraceFlags(3), state
    )
    context = trace.set_span_in_context(trace.NonRecordingSpan(span_context))
    ours: dict[str, str] = {}
    otel: dict[str, str] = {}
    OURS_TC.inject(ours, context)
    OTEL_TC.inject(otel, context)
    assert otel == ours


# -- baggage ---------------------------------------------------------------------------

TOKEN_NO_ESCAPES = st.text(
    "!#$&'*-.^_`|~" + string.ascii_letters + string.digits, min_size=1, max_size=10
)
PLAIN_OCTETS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\%+')
ESCAPE = st.sampled_from(["%2C", "%3B", "%22", "%5C", "%25", "%2B", "%E2%82%AC", "%c3%a9", "%FF"])
BAGGAGE_VALUE = st.lists(
    st.one_of(st.text(PLAIN_OCTETS, min_size=1, max_size=6), ESCAPE), max_size=4
).map("".join)
OWS = st.sampled_from(["", " ", "\t", " \t "])


@given(
    st.lists(st.tuples(TOKEN_NO_ESCAPES, OWS, BAGGAGE_VALUE, OWS), max_size=20),
    st.lists(st.sampled_from(["bad key=1", "k=a b", "novalue", 'k="q"', ""]), max_size=2),
)
@example([("k", "", "a=b", "")], [])
def test_baggage_extract_agrees_with_opentelemetry(
    members: list[tuple[str, str, str, str]], invalid: list[str]
) -> None:
    header = ",".join([f"{k}{ows1}={ows2}{v}" for k, ows1, v, ows2 in members] + invalid)
    ours, otel = both_baggage({"baggage": header})
    assert otel == ours


@given(
    st.dictionaries(
        st.text(string.ascii_letters, min_size=1, max_size=8),
        st.text(string.ascii_letters + "-._~", max_size=8),
        max_size=10,
    )
)
def test_baggage_inject_agrees_with_opentelemetry_on_plain_text(entries: dict[str, str]) -> None:
    context = Context()
    for key, value in entries.items():
        context = baggage.set_baggage(key, value, context)
    ours: dict[str, str] = {}
    otel: dict[str, str] = {}
    OURS_BAGGAGE.inject(ours, context)
    OTEL_BAGGAGE.inject(otel, context)
    assert otel == ours


# -- known disagreements: each shows both behaviours ---------------------------------------


def test_disagreement_several_traceparent_lines() -> None:
    """Spec: several traceparent lines are invalid. OpenTelemetry uses the first."""
    ours, otel = both_tc({"traceparent": [TP, f"00-{'1' * 32}-{'1' * 16}-01"]})
    assert (None, int(TRACE, 16)) == (ours, otel[0])  # type: ignore[index]


def test_disagreement_traceparent_trailing_newline() -> None:
    """Spec: version 00 is exactly 55 characters. OpenTelemetry's `$` allows a final newline."""
    ours, otel = both_tc({"traceparent": TP + "\n"})
    assert (None, int(TRACE, 16)) == (ours, otel[0])  # type: ignore[index]


def test_disagreement_comma_in_a_higher_version() -> None:
    """We treat any comma as joined header lines. OpenTelemetry ignores it after the flags."""
    ours, otel = both_tc({"traceparent": f"cc-{TRACE}-{PARENT}-01-a,b"})
    assert (None, int(TRACE, 16)) == (ours, otel[0])  # type: ignore[index]


def test_disagreement_unknown_flag_bits() -> None:
    """We keep only 0x01 and 0x02 in the remote SpanContext. OpenTelemetry keeps every bit."""
    carrier = {"traceparent": f"00-{TRACE}-{PARENT}-ff"}
    ours = trace.get_current_span(OURS_TC.extract(carrier)).get_span_context().trace_flags
    otel = trace.get_current_span(OTEL_TC.extract(carrier)).get_span_context().trace_flags
    assert (0x03, 0xFF) == (ours, otel)


def test_disagreement_unknown_flag_bits_on_inject() -> None:
    """Spec: other flags MUST be zero. OpenTelemetry's inject writes them back out."""
    span_context = trace.SpanContext(int(TRACE, 16), int(PARENT, 16), True, trace.TraceFlags(0xFF))
    context = trace.set_span_in_context(trace.NonRecordingSpan(span_context))
    ours: dict[str, str] = {}
    otel: dict[str, str] = {}
    OURS_TC.inject(ours, context)
    OTEL_TC.inject(otel, context)
    assert (f"00-{TRACE}-{PARENT}-03", f"00-{TRACE}-{PARENT}-ff") == (
        ours["traceparent"],
        otel["traceparent"],
    )


def test_disagreement_level2_tracestate_keys() -> None:
    """Level 2 keys may start with a digit and hold "@" anywhere. OpenTelemetry drops them all."""
    for key in ["1abc", "a@b@c", "a@1b", "a@", "t@" + "s" * 20]:
        ours, otel = both_tc({"traceparent": TP, "tracestate": f"{key}=v,rojo=1"})
        assert ({key: "v", "rojo": "1"}, {}) == (ours[4], otel[4])  # type: ignore[index]


def test_disagreement_duplicate_tracestate_keys() -> None:
    """We keep the left-most duplicate. OpenTelemetry discards the whole tracestate."""
    ours, otel = both_tc({"traceparent": TP, "tracestate": "a=1,b=2,a=3"})
    assert ({"a": "1", "b": "2"}, {}) == (ours[4], otel[4])  # type: ignore[index]


def test_disagreement_tracestate_over_512_characters() -> None:
    """We truncate whole entries to 512 characters. OpenTelemetry keeps 8192, then drops all."""
    long = [f"k{i}={'x' * 200}" for i in range(4)]
    ours, otel = both_tc({"traceparent": TP, "tracestate": ",".join(long)})
    assert (["k0", "k1"], [f"k{i}" for i in range(4)]) == (list(ours[4]), list(otel[4]))  # type: ignore[index]
    huge = [f"k{i}={'x' * 256}" for i in range(32)]  # 8,319 characters
    ours, otel = both_tc({"traceparent": TP, "tracestate": ",".join(huge)})
    assert (["k0"], []) == (list(ours[4]), list(otel[4]))  # type: ignore[index]


def test_disagreement_only_first_baggage_header() -> None:
    """Spec: all baggage lines are combined. OpenTelemetry reads only the first."""
    ours, otel = both_baggage({"baggage": ["a=1", "b=2"]})
    assert ({"a": "1", "b": "2"}, {"a": "1"}) == (ours, otel)


def test_disagreement_plus_sign() -> None:
    """RFC 3986 decoding keeps "+". OpenTelemetry's unquote_plus turns it into a space."""
    ours, otel = both_baggage({"baggage": "k=1+1"})
    assert ({"k": "1+1"}, {"k": "1 1"}) == (ours, otel)


def test_disagreement_properties() -> None:
    """We keep properties apart from the value. OpenTelemetry folds them into the value."""
    ours, otel = both_baggage({"baggage": "k=v;ttl=60"})
    assert ({"k": "v"}, {"k": "v;ttl=60"}) == (ours, otel)
    context = OURS_BAGGAGE.extract({"baggage": "k=v;ttl=60"}, Context())
    assert "ttl=60" == baggage.get_baggage("k", context).properties  # type: ignore[union-attr]


def test_disagreement_percent_in_keys() -> None:
    """Spec: keys are tokens, taken literally. OpenTelemetry percent-decodes them."""
    ours, otel = both_baggage({"baggage": "k%41=v"})
    assert ({"k%41": "v"}, {"kA": "v"}) == (ours, otel)


def test_disagreement_decoded_edge_spaces() -> None:
    """Escaped spaces are value content. OpenTelemetry strips them after decoding."""
    ours, otel = both_baggage({"baggage": "k=%20v%20"})
    assert ({"k": " v "}, {"k": "v"}) == (ours, otel)


def test_disagreement_baggage_size_limits() -> None:
    """We drop whole members past 64 / 8192 bytes. OpenTelemetry drops an over-long header whole."""
    header = "a=1," + ",".join(f"k{i}={'x' * 100}" for i in range(100))
    ours, otel = both_baggage({"baggage": header})
    assert (64, 0) == (len(ours), len(otel))


def test_disagreement_baggage_inject_encoding() -> None:
    """We escape only non-baggage-octets and keep properties. OpenTelemetry uses quote_plus."""
    context = baggage.set_baggage("k", BaggageValue("a b/c=d", "ttl=60"), Context())
    ours: dict[str, str] = {}
    otel: dict[str, str] = {}
    OURS_BAGGAGE.inject(ours, context)
    OTEL_BAGGAGE.inject(otel, context)
    assert ("k=a%20b/c=d;ttl=60", "k=a+b%2Fc%3Dd") == (ours["baggage"], otel["baggage"])


def test_disagreement_non_utf8_bytes_do_not_raise() -> None:
    """Raw non-UTF-8 bytes are just invalid for us; OpenTelemetry needs decoded str input."""
    context = context_from_w3c([TP.encode()], [b"a=\xff"], [b"k=\xff,j=1"])
    assert ({}, {"j": "1"}) == (span_of(context)[4], dict(baggage.get_all(context)))  # type: ignore[index]
