"""OpenTelemetry glue: context_from_w3c, the TextMapPropagators and the global install."""

from __future__ import annotations

import copy
import logging
import pickle
import time
from collections.abc import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace.span import TraceState

import asgi_observe.propagation._log as propagation_log
from asgi_observe.propagation import (
    BaggageValue,
    W3CBaggagePropagator,
    W3CTraceContextPropagator,
    W3CTraceState,
    context_from_w3c,
    install_global_propagator,
    is_w3c_global,
    w3c_propagator,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TP = f"00-{TRACE}-{PARENT}-01"
# Keys valid in Level 2 that OpenTelemetry's own TraceState rejects.
LEVEL2_TRACESTATE = "1abc=x,a@b@c= v,rojo=00f067aa0ba902b7"


def span_context_of(context: Context) -> trace.SpanContext:
    return trace.get_current_span(context).get_span_context()


@pytest.fixture
def restore_global_textmap() -> Iterator[None]:
    saved = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(saved)


# -- context_from_w3c ---------------------------------------------------------


def test_no_headers_returns_the_given_context_itself() -> None:
    given = Context({"x": 1})
    assert given is context_from_w3c([], [], [], given)


def test_no_headers_and_no_context_returns_an_empty_context() -> None:
    assert Context() == context_from_w3c([], [], [])


def test_invalid_headers_return_the_given_context_itself() -> None:
    given = Context({"x": 1})
    assert given is context_from_w3c([b"00-bad"], [b"a=1"], [b"bad key=1"], given)


def test_valid_traceparent_gives_a_remote_parent() -> None:
    span_context = span_context_of(context_from_w3c([TP.encode()], [], []))
    assert (int(TRACE, 16), int(PARENT, 16), True, 0x01) == (
        span_context.trace_id,
        span_context.span_id,
        span_context.is_remote,
        span_context.trace_flags,
    )
    assert not span_context.trace_state


@pytest.mark.parametrize(("wire", "kept"), [("00", 0), ("01", 1), ("02", 2), ("03", 3), ("ff", 3)])
def test_remote_flags_keep_sampled_and_random_bits_only(wire: str, kept: int) -> None:
    context = context_from_w3c([f"00-{TRACE}-{PARENT}-{wire}".encode()], [], [])
    flags = span_context_of(context).trace_flags
    assert (kept, bool(kept & 1), bool(kept & 2)) == (flags, flags.sampled, flags.random_trace_id)


def test_tracestate_is_carried_exactly_including_level2_keys() -> None:
    context = context_from_w3c([TP.encode()], [b"1abc=x", b"a@b@c= v,rojo=00f067aa0ba902b7"], [])
    state = span_context_of(context).trace_state
    assert isinstance(state, W3CTraceState)
    assert LEVEL2_TRACESTATE == state.to_header()
    assert [("1abc", "x"), ("a@b@c", " v"), ("rojo", PARENT)] == list(state.items())


def test_tracestate_is_ignored_when_traceparent_is_invalid() -> None:
    context = context_from_w3c([TP.encode(), TP.encode()], [b"a=1"], [])
    assert trace.INVALID_SPAN_CONTEXT == span_context_of(context)


def test_invalid_tracestate_keeps_the_traceparent() -> None:
    span_context = span_context_of(context_from_w3c([TP.encode()], [b"A=1"], []))
    assert (True, 0) == (span_context.is_valid, len(span_context.trace_state))


def test_baggage_only_sets_baggage_without_a_span() -> None:
    context = context_from_w3c([], [], [b"a=1", b"b=%20x;p=1"])
    assert {"a": "1", "b": " x"} == baggage.get_all(context)
    assert "p=1" == baggage.get_baggage("b", context).properties  # type: ignore[union-attr]
    assert trace.INVALID_SPAN_CONTEXT == span_context_of(context)


def test_baggage_merges_into_existing_baggage_and_duplicates_keep_the_last() -> None:
    given = baggage.set_baggage("old", "1", baggage.set_baggage("a", "0"))
    context = context_from_w3c([], [], [b"a=1,a=2,b=3"], given)
    assert {"old": "1", "a": "2", "b": "3"} == baggage.get_all(context)
    assert {"old": "1", "a": "0"} == baggage.get_all(given)


def test_other_context_values_are_kept() -> None:
    given = Context({"other": "value"})
    context = context_from_w3c([TP.encode()], [], [b"a=1"], given)
    assert "value" == context["other"]


def test_baggage_values_are_plain_strings_unless_they_have_properties() -> None:
    context = context_from_w3c([], [], [b"a=1,b=2;p"])
    a, b = baggage.get_baggage("a", context), baggage.get_baggage("b", context)
    assert (str, BaggageValue) == (type(a), type(b))
    assert "2" == b


# -- W3CTraceState --------------------------------------------------------------


def test_trace_state_mutations_use_level2_grammar_and_move_keys_left() -> None:
    state = W3CTraceState.from_validated([("1abc", "x"), ("rojo", "1")])
    added = state.add("9@z@y", "new")
    assert "9@z@y=new,1abc=x,rojo=1" == added.to_header()
    assert "rojo=2,1abc=x" == state.update("rojo", "2").to_header()
    assert "rojo=1" == state.delete("1abc").to_header()
    assert isinstance(added, W3CTraceState)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.add("Bad", "v"),
        lambda s: s.add("1abc", "dup"),
        lambda s: s.update("k", "bad,value"),
        lambda s: s.delete("missing"),
    ],
)
def test_invalid_trace_state_mutations_return_the_same_state(change) -> None:  # type: ignore[no-untyped-def]
    state = W3CTraceState.from_validated([("1abc", "x")])
    assert state is change(state)


def test_trace_state_add_stops_at_32_members() -> None:
    full = W3CTraceState.from_validated([(f"k{i}", "v") for i in range(32)])
    assert full is full.add("new", "v")
    assert full is full.update("new", "v")
    assert "k5=w" == full.update("k5", "w").to_header().split(",")[0]


def test_trace_state_constructor_validates_with_level2_grammar() -> None:
    state = W3CTraceState([("1abc", "x"), ("Bad", "v"), ("1abc", "dup"), ("a@b@c", "y")])
    assert "1abc=x,a@b@c=y" == state.to_header()
    assert 0 == len(W3CTraceState([(f"k{i}", "v") for i in range(33)]))
    assert 0 == len(W3CTraceState())


def test_trace_state_copies_and_pickles() -> None:
    state = W3CTraceState.from_validated([("1abc", "x")])
    state.to_header()
    for clone in (copy.deepcopy(state), pickle.loads(pickle.dumps(state))):
        assert ("1abc=x", {"1abc": "x"}) == (clone.to_header(), dict(clone))


def test_trace_state_is_a_trace_state_mapping() -> None:
    state = W3CTraceState.from_validated([("a", "1")])
    assert isinstance(state, TraceState)
    assert ("1", ["a"], True) == (state["a"], list(state), "a" in state)


# -- the SDK carries the parent's trace_state and random bit to the child --------


@pytest.mark.parametrize(
    ("sampler", "sampled"),
    [
        pytest.param(ParentBased(ALWAYS_ON), True, id="parentbased-on"),
        pytest.param(ParentBased(ALWAYS_OFF), True, id="parentbased-follows-sampled-parent"),
        pytest.param(ALWAYS_ON, True, id="always-on"),
        pytest.param(ALWAYS_OFF, False, id="always-off"),
        pytest.param(TraceIdRatioBased(1.0), True, id="ratio-1"),
        pytest.param(ParentBased(TraceIdRatioBased(0.0)), True, id="parentbased-ratio-0"),
    ],
)
def test_sdk_child_span_keeps_the_carried_tracestate(sampler: Sampler, sampled: bool) -> None:
    provider = TracerProvider(sampler=sampler)
    parent = context_from_w3c(
        [f"00-{TRACE}-{PARENT}-03".encode()], [LEVEL2_TRACESTATE.encode()], []
    )
    span = provider.get_tracer("t").start_span("child", context=parent)
    child = span.get_span_context()
    span.end()
    assert (LEVEL2_TRACESTATE, int(TRACE, 16)) == (child.trace_state.to_header(), child.trace_id)
    assert span_context_of(parent).trace_state is child.trace_state
    assert (sampled, True) == (child.trace_flags.sampled, child.trace_flags.random_trace_id)
    provider.shutdown()


@pytest.mark.parametrize(("wire", "child_flags"), [("00", 0x00), ("01", 0x01), ("02", 0x02)])
def test_sdk_child_inherits_the_random_bit_from_the_remote_parent(
    wire: str, child_flags: int
) -> None:
    provider = TracerProvider()
    parent = context_from_w3c([f"00-{TRACE}-{PARENT}-{wire}".encode()], [], [])
    span = provider.get_tracer("t").start_span("child", context=parent)
    span.end()
    assert child_flags == span.get_span_context().trace_flags
    provider.shutdown()


def test_inject_inside_a_handler_yields_spec_headers(restore_global_textmap: None) -> None:
    install_global_propagator(force=True)
    provider = TracerProvider()
    parent = context_from_w3c(
        [f"00-{TRACE}-{PARENT}-ff".encode()],
        [LEVEL2_TRACESTATE.encode()],
        [b"user=a%20b;ttl=60,plus=1+1"],
    )
    token = attach(parent)
    try:
        with provider.get_tracer("t").start_as_current_span("handler") as span:
            headers: dict[str, str] = {}
            propagate.inject(headers)
            span_id = span.get_span_context().span_id
    finally:
        detach(token)
    provider.shutdown()
    assert {
        "traceparent": f"00-{TRACE}-{span_id:016x}-03",
        "tracestate": LEVEL2_TRACESTATE,
        "baggage": "user=a%20b;ttl=60,plus=1+1",
    } == headers


# -- the TextMapPropagators --------------------------------------------------------


class ListGetter(Getter[dict[str, list[bytes]]]):
    """A getter returning every raw header line, as ASGI gives them."""

    def get(self, carrier: dict[str, list[bytes]], key: str) -> list[bytes] | None:  # type: ignore[override]
        return carrier.get(key)

    def keys(self, carrier: dict[str, list[bytes]]) -> list[str]:
        return list(carrier)


def test_extract_from_a_dict_carrier() -> None:
    carrier = {"traceparent": TP, "tracestate": LEVEL2_TRACESTATE, "baggage": "a=1;p"}
    context = w3c_propagator().extract(carrier)
    assert LEVEL2_TRACESTATE == span_context_of(context).trace_state.to_header()
    assert "p" == baggage.get_baggage("a", context).properties  # type: ignore[union-attr]


def test_extract_combines_several_values_per_header() -> None:
    carrier = {
        "traceparent": [TP.encode()],
        "tracestate": [b"1abc=x", b"a@b@c= v,rojo=00f067aa0ba902b7"],
        "baggage": [b"a=1", b"b=2"],
    }
    context = w3c_propagator().extract(carrier, getter=ListGetter())
    assert LEVEL2_TRACESTATE == span_context_of(context).trace_state.to_header()
    assert {"a": "1", "b": "2"} == baggage.get_all(context)


def test_extract_rejects_several_traceparent_values() -> None:
    carrier = {"traceparent": [TP.encode(), TP.encode()]}
    context = W3CTraceContextPropagator().extract(carrier, getter=ListGetter())
    assert trace.INVALID_SPAN_CONTEXT == span_context_of(context)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(TP.replace("4", "\u00e4", 1), id="latin-1-str"),
        pytest.param(TP.replace("4", "\ud800", 1), id="lone-surrogate"),
        pytest.param(None, id="none"),
        pytest.param(42, id="not-a-string"),
    ],
)
def test_extract_never_raises_on_odd_carrier_values(value: object) -> None:
    carrier = {"traceparent": value, "tracestate": value, "baggage": value}
    context = w3c_propagator().extract(carrier)
    assert trace.INVALID_SPAN_CONTEXT == span_context_of(context)


def test_extract_without_traceparent_returns_the_given_context() -> None:
    given = Context({"x": 1})
    assert given is W3CTraceContextPropagator().extract({"tracestate": "a=1"}, given)


def test_baggage_extract_defaults_to_the_current_context() -> None:
    token = attach(baggage.set_baggage("outer", "1"))
    try:
        context = W3CBaggagePropagator().extract({"baggage": "a=2"})
    finally:
        detach(token)
    assert {"outer": "1", "a": "2"} == baggage.get_all(context)


def test_inject_writes_nothing_without_a_valid_span_or_baggage() -> None:
    carrier: dict[str, str] = {}
    w3c_propagator().inject(carrier, Context())
    assert {} == carrier


def test_inject_masks_flags_and_keeps_tracestate_exactly() -> None:
    context = context_from_w3c(
        [f"01-{TRACE}-{PARENT}-ff-x".encode()], [LEVEL2_TRACESTATE.encode()], []
    )
    carrier: dict[str, str] = {}
    W3CTraceContextPropagator().inject(carrier, context)
    assert {"traceparent": f"00-{TRACE}-{PARENT}-03", "tracestate": LEVEL2_TRACESTATE} == carrier


def test_inject_of_a_span_with_otel_tracestate_and_unknown_flags() -> None:
    span_context = trace.SpanContext(
        int(TRACE, 16), int(PARENT, 16), False, trace.TraceFlags(0xFD), TraceState([("a", "1")])
    )
    context = trace.set_span_in_context(trace.NonRecordingSpan(span_context))
    carrier: dict[str, str] = {}
    W3CTraceContextPropagator().inject(carrier, context)
    assert {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "a=1"} == carrier


def test_inject_encodes_baggage_set_by_the_application() -> None:
    context = baggage.set_baggage("city", 'Zürich; "old"')
    context = baggage.set_baggage("n", 3, context)
    context = baggage.set_baggage("bad key", "dropped", context)
    context = baggage.set_baggage("tagged", BaggageValue("v", "ttl=60;secret"), context)
    carrier: dict[str, str] = {}
    W3CBaggagePropagator().inject(carrier, context)
    assert {"baggage": "city=Z%C3%BCrich%3B%20%22old%22,n=3,tagged=v;ttl=60;secret"} == carrier


def test_fields() -> None:
    assert {"traceparent", "tracestate"} == W3CTraceContextPropagator().fields
    assert {"baggage"} == W3CBaggagePropagator().fields
    assert {"traceparent", "tracestate", "baggage"} == w3c_propagator().fields


def test_baggage_value_is_a_str_with_properties() -> None:
    value = BaggageValue("v", "p=1")
    assert ("v", "p=1", "") == (value, value.properties, BaggageValue("v").properties)
    assert isinstance(value, str)


# -- the global propagator ------------------------------------------------------------


def test_w3c_propagator_is_one_shared_instance() -> None:
    assert w3c_propagator() is w3c_propagator()


def test_install_sets_the_global_textmap_and_is_idempotent(
    restore_global_textmap: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_PROPAGATORS", raising=False)
    propagate.set_global_textmap(W3CBaggagePropagator())
    assert (False, True, True, True) == (
        is_w3c_global(),
        install_global_propagator(),
        install_global_propagator(),
        is_w3c_global(),
    )
    assert w3c_propagator() is propagate.get_global_textmap()


def test_install_respects_otel_propagators_unless_forced(
    restore_global_textmap: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PROPAGATORS", "b3")
    users = W3CBaggagePropagator()
    propagate.set_global_textmap(users)
    assert (False, False) == (install_global_propagator(), is_w3c_global())
    assert users is propagate.get_global_textmap()
    assert (True, True) == (install_global_propagator(force=True), is_w3c_global())


def test_install_with_otel_propagators_set_but_already_ours_reports_true(
    restore_global_textmap: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    propagate.set_global_textmap(w3c_propagator())
    monkeypatch.setenv("OTEL_PROPAGATORS", "tracecontext")
    assert install_global_propagator()


# -- logging ----------------------------------------------------------------------


def test_invalid_input_logs_one_truncated_debug_line_per_second(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(propagation_log, "_next_allowed", [0.0])
    caplog.set_level(logging.DEBUG, logger="asgi_observe.propagation")
    secret = b"00-" + b"S" * 400
    for _ in range(100):
        context_from_w3c([secret], [], [b"bad key=" + b"S" * 400])
    assert 1 == len(caplog.records)
    record = caplog.records[0]
    assert logging.DEBUG == record.levelno
    assert "S" * 65 not in record.getMessage()
    assert len(record.getMessage()) < 160


def test_nothing_is_logged_when_debug_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="asgi_observe.propagation")
    context_from_w3c([b"bad"], [], [b"bad key=1"])
    assert [] == caplog.records


def test_baggage_value_copies_and_pickles_with_its_properties() -> None:
    value = BaggageValue("v", "p=1")
    for clone in (copy.copy(value), copy.deepcopy(value), pickle.loads(pickle.dumps(value))):
        assert (BaggageValue, "v", "p=1") == (type(clone), clone, clone.properties)


def test_extract_accepts_a_getter_that_returns_one_string() -> None:
    class OneValueGetter(Getter[dict[str, str]]):
        def get(self, carrier: dict[str, str], key: str) -> str | None:  # type: ignore[override]
            return carrier.get(key)

        def keys(self, carrier: dict[str, str]) -> list[str]:
            return list(carrier)

    carrier = {"traceparent": TP, "tracestate": "1abc=x", "baggage": "a=1"}
    context = w3c_propagator().extract(carrier, getter=OneValueGetter())
    assert "1abc=x" == span_context_of(context).trace_state.to_header()
    assert {"a": "1"} == baggage.get_all(context)


def test_inject_ignores_a_properties_attribute_on_foreign_values() -> None:
    class Tagged:
        properties = {"not": "text"}

        def __str__(self) -> str:
            return "tagged"

    carrier: dict[str, str] = {}
    W3CBaggagePropagator().inject(carrier, baggage.set_baggage("k", Tagged(), Context()))
    assert {"baggage": "k=tagged"} == carrier


def test_inject_drops_a_baggage_value_with_invalid_properties() -> None:
    context = baggage.set_baggage("bad", BaggageValue("v", "p q"), Context())
    context = baggage.set_baggage("ok", BaggageValue("v", "p"), context)
    carrier: dict[str, str] = {}
    W3CBaggagePropagator().inject(carrier, context)
    assert {"baggage": "ok=v;p"} == carrier


lines = st.lists(st.binary(max_size=80), max_size=4)


@given(lines, lines, lines)
@example([b"00-" + b"1" * 32 + b"-" + b"1" * 16 + b"-01"], [b"a=\xff"], [b"k=%\xff;\xff"])
def test_context_from_w3c_never_raises(
    tps: list[bytes], tss: list[bytes], bgs: list[bytes]
) -> None:
    context = context_from_w3c(tps, tss, bgs)
    carrier: dict[str, str] = {}
    w3c_propagator().inject(carrier, context)
    assert set(carrier) <= {"traceparent", "tracestate", "baggage"}


header_values = st.one_of(
    st.none(),
    st.text(max_size=80),
    st.lists(st.one_of(st.text(max_size=60), st.binary(max_size=60))),
)


@given(header_values, header_values, header_values)
def test_propagator_extract_never_raises(tp: object, ts: object, bg: object) -> None:
    carrier = {"traceparent": tp, "tracestate": ts, "baggage": bg}
    assert isinstance(w3c_propagator().extract(carrier), Context)


@given(
    st.integers(1, 2**128 - 1),
    st.integers(1, 2**64 - 1),
    st.integers(0, 3),
    st.dictionaries(
        st.text("abcdefghijklmnopqrstuvwxyz0123456789_-*/@", min_size=1, max_size=10).filter(
            lambda k: k[0].isalnum()
        ),
        st.from_regex(
            r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,10}[\x21-\x2b\x2d-\x3c\x3e-\x7e]", fullmatch=True
        ),
        max_size=8,
    ),
    st.dictionaries(
        st.text("abcXYZ019!#$&'*+-.^_`|~", min_size=1, max_size=8), st.text(max_size=12), max_size=8
    ),
)
def test_inject_then_extract_round_trips(
    trace_id: int, span_id: int, flags: int, state: dict[str, str], bag: dict[str, str]
) -> None:
    span_context = trace.SpanContext(
        trace_id, span_id, True, trace.TraceFlags(flags), W3CTraceState.from_validated(state)
    )
    context = trace.set_span_in_context(trace.NonRecordingSpan(span_context), Context())
    for key, value in bag.items():
        context = baggage.set_baggage(key, value, context)
    carrier: dict[str, str] = {}
    w3c_propagator().inject(carrier, context)
    back = w3c_propagator().extract(carrier, Context())
    got = span_context_of(back)
    assert (trace_id, span_id, flags, state) == (
        got.trace_id,
        got.span_id,
        got.trace_flags,
        dict(got.trace_state),
    )
    assert bag == dict(baggage.get_all(back))


def test_context_from_w3c_with_100kb_headers_is_fast() -> None:
    huge = b"k=" + b"v" * 100_000
    many = [b"a=1"] * 10_000
    start = time.perf_counter()
    context_from_w3c([TP.encode()], [huge], [huge])
    context_from_w3c([TP.encode()], many, many)
    context_from_w3c([TP.encode()], [b",".join(many)], [b",".join(many)])
    assert time.perf_counter() - start < 0.05
