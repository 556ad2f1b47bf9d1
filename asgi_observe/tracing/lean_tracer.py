"""Which span starter the tracing layer uses: the lean one for the SDK's own provider, else the SDK.

The lean starter (LeanTracer) does what `opentelemetry.sdk.trace.Tracer.start_span` does,
with the provider's own sampler, id generator, resource, limits, span metrics and span
processors, and starts a LeanSpan (lean_span.py). It is used only for a provider that is
exactly the SDK's TracerProvider, of an SDK version the equivalence suite
(tests/tracing/test_lean_span.py) ran against, unless ASGI_OBSERVE_LEAN_SPAN turns it off;
any other provider gets its own tracer's start_span. docs/performance.md says why.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import metadata
from typing import Any, Protocol

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.util import types

from asgi_observe.tracing.lean_span import LeanSpan

__all__ = [
    "LEAN_SPAN_VARIABLE",
    "SDK_PRIVATE_NAMES",
    "TESTED_SDK_VERSIONS",
    "LeanTracer",
    "SpanStarter",
    "span_starter",
]

LEAN_SPAN_VARIABLE = "ASGI_OBSERVE_LEAN_SPAN"
_OFF = frozenset(("0", "false", "off", "no"))
# The lowest SDK version the equivalence suite runs against, and the first it has not
# seen (.ci/run runs it against the lowest and the highest in venvs of their own).
TESTED_SDK_VERSIONS = ((1, 43, 0), (1, 46, 0))

# Every private SDK name the lean span relies on, beside the test that fails when the
# SDK changes it (all in tests/tracing/test_lean_span.py).
SDK_PRIVATE_NAMES = {
    "Tracer._is_enabled()": "test_a_disabled_tracer_makes_the_same_non_recording_span",
    "Tracer._tracer_metrics.start_span()": "test_sdk_span_metrics_count_lean_spans_alike",
    "Tracer._span_limits": "test_limits_bound_and_count_alike",
    "Tracer._instrumentation_scope": "test_every_exported_field_is_the_sdks",
    "SynchronousMultiSpanProcessor._on_ending()": "test_processors_see_the_same_calls",
    "BoundedAttributes._set_items()": "test_attributes_the_sdk_cleans_are_cleaned_alike",
    "ReadableSpan's fields (_name, _context, _attributes, ...)": (
        "test_every_exported_field_is_the_sdks"
    ),
}

_server_flags = {
    (sampled, random): TraceFlags(
        (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        | (TraceFlags.RANDOM_TRACE_ID if random else 0)
    )
    for sampled in (False, True)
    for random in (False, True)
}


class SpanStarter(Protocol):
    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        *,
        start_time: int | None = None,
    ) -> trace_api.Span: ...


class LeanTracer:
    """`Tracer.start_span` of the SDK tracer it wraps, starting a LeanSpan when sampled."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        *,
        start_time: int | None = None,
    ) -> trace_api.Span:
        # Step by step what opentelemetry.sdk.trace.Tracer.start_span does (links=()).
        tracer = self._tracer
        parent: SpanContext | None = trace_api.get_current_span(context).get_span_context()
        if parent is not None and not isinstance(parent, SpanContext):
            raise TypeError("parent_span_context must be a SpanContext or None.")
        if not tracer._is_enabled():
            return NonRecordingSpan(context=parent)  # type: ignore[arg-type]  # as the SDK
        id_generator = tracer.id_generator
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = id_generator.generate_trace_id()
        else:
            trace_id = parent.trace_id
        result = tracer.sampler.should_sample(context, trace_id, name, kind, attributes, ())
        decision = result.decision
        if parent is None:
            random_trace_id = id_generator.is_trace_id_random()
        else:
            random_trace_id = parent.trace_flags.random_trace_id
        span_context = SpanContext(
            trace_id,
            id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=_server_flags[decision.is_sampled(), bool(random_trace_id)],
            trace_state=result.trace_state,
        )
        record_end_metrics = tracer._tracer_metrics.start_span(parent, decision)
        if not decision.is_recording():
            return NonRecordingSpan(context=span_context)
        processor = tracer.span_processor
        span = LeanSpan(
            name,
            span_context,
            parent,
            kind,
            tracer.resource,
            result.attributes,
            tracer._span_limits,
            processor,
            tracer.instrumentation_info,
            tracer._instrumentation_scope,
            start_time,
            record_end_metrics,
        )
        processor.on_start(span, parent_context=context)
        return span


def span_starter(name: str, tracer_provider: trace_api.TracerProvider | None) -> SpanStarter:
    """The starter for spans of instrumentation `name` from this provider (None: the global)."""
    if tracer_provider is None:
        return _GlobalStarter(name)
    return _starter_for(name, tracer_provider)


def _starter_for(name: str, provider: trace_api.TracerProvider) -> SpanStarter:
    tracer = trace_api.get_tracer(name, tracer_provider=provider)
    if lean_span_applies(provider, tracer):
        return LeanTracer(tracer)
    return tracer


def lean_span_applies(provider: object, tracer: object) -> bool:
    """True for the SDK's own provider and tracer, a tested SDK, and the variable not off."""
    from opentelemetry.sdk.trace import Tracer, TracerProvider

    if type(provider) is not TracerProvider or type(tracer) is not Tracer:
        return False
    if os.environ.get(LEAN_SPAN_VARIABLE, "").strip().lower() in _OFF:
        return False
    return sdk_version_tested()


@cache
def sdk_version_tested() -> bool:
    low, first_untested = TESTED_SDK_VERSIONS
    return low <= _sdk_version() < first_untested


def _sdk_version() -> tuple[int, ...]:
    try:
        text = metadata.version("opentelemetry-sdk")
    except metadata.PackageNotFoundError:
        return ()
    numbers: list[int] = []
    for part in text.split(".")[:3]:
        if not part.isdigit():
            return ()  # a pre-release or local build: not what was tested
        numbers.append(int(part))
    return tuple(numbers)


class _GlobalStarter:
    """Follows the global provider, which may be set after the middleware is built."""

    __slots__ = ("_name", "_provider", "_starter")

    def __init__(self, name: str) -> None:
        self._name = name
        self._provider: object = None
        self._starter: SpanStarter | None = None

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        *,
        start_time: int | None = None,
    ) -> trace_api.Span:
        provider = trace_api.get_tracer_provider()
        starter = self._starter
        if provider is not self._provider or starter is None:
            starter = self._starter = _starter_for(self._name, provider)
            self._provider = provider
        return starter.start_span(
            name, context=context, kind=kind, attributes=attributes, start_time=start_time
        )
