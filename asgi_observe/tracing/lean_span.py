"""LeanSpan: the request span, recording exactly what the SDK's span records, with less work.

Why it exists and why it is equivalent: docs/performance.md, "The lean span". Every name
below that starts with an underscore and belongs to the SDK is listed in SDK_PRIVATE_NAMES
with the test that fails if the SDK changes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import time_ns
from types import MappingProxyType, TracebackType
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationInfo, InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util import types

__all__ = ["LeanSpan"]

# The SDK's own logger and messages: a warning about a misused span reads the same
# whichever span class made it.
_sdk_logger = logging.getLogger(sdk_trace.__name__)

# Values the SDK stores as they are (opentelemetry.attributes cleans nothing of these
# exact types but the length of a string); anything else takes the SDK's own path.
_PLAIN = frozenset((str, bool, int, float))
_STR = frozenset((str,))
_UNSET_STATUS = Status(StatusCode.UNSET)
_SpanProcessor = Any  # the provider's multi-processor (Synchronous or Concurrent)


class LeanSpan(trace_api.Span, ReadableSpan):
    """A recording span that hands its processors one ReadableSpan at its end.

    It keeps the fields under the names ReadableSpan's properties read, so every read
    accessor and `to_json` is the SDK's own code. The attributes stay in a plain dict while
    every value is a plain str, bool, int or float within the limits (what the SDK would
    store unchanged); the first value that is not moves them into the SDK's
    BoundedAttributes, which then cleans, bounds and counts as it does for an SDK span.
    """

    __slots__ = (
        "_attributes",
        "_context",
        "_end_time",
        "_events",
        "_instrumentation_info",
        "_instrumentation_scope",
        "_kind",
        "_limits",
        "_links",
        "_lock",
        "_max_attributes",
        "_max_length",
        "_name",
        "_parent",
        "_record_end_metrics",
        "_resource",
        "_span_processor",
        "_start_time",
        "_status",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        resource: Resource,
        attributes: Mapping[str, types.AnyValue],
        limits: SpanLimits,
        span_processor: _SpanProcessor,
        instrumentation_info: InstrumentationInfo,
        instrumentation_scope: InstrumentationScope,
        start_time: int | None,
        record_end_metrics: Callable[[], None],
    ) -> None:
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._resource = resource
        self._limits = limits
        self._max_attributes = limits.max_span_attributes
        self._max_length = limits.max_span_attribute_length
        self._events: Sequence[Event] = ()
        self._links: Sequence[Link] = ()
        self._status = _UNSET_STATUS
        self._end_time: int | None = None
        self._instrumentation_info = instrumentation_info
        self._instrumentation_scope = instrumentation_scope
        self._span_processor = span_processor
        self._record_end_metrics = record_end_metrics
        self._lock = threading.Lock()
        self._attributes = _start_attributes(attributes, limits)
        self._start_time = start_time if start_time is not None else time_ns()

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name="{self._name}", context={self._context})'

    # --- attributes ------------------------------------------------------------------

    def _is_plain(self, key: Any, value: Any) -> bool:
        """True when the SDK would store this pair unchanged (a bound aside)."""
        value_type = type(value)
        if type(key) is not str or not key or value_type not in _PLAIN:
            return False
        return value_type is not str or self._max_length is None or len(value) <= self._max_length

    def _has_room(self, plain: dict[str, types.AnyValue], new_keys: int) -> bool:
        maximum = self._max_attributes
        return maximum is None or len(plain) + new_keys <= maximum

    def _bounded(self) -> BoundedAttributes:
        """The SDK's container, taking over the plain values stored so far."""
        attributes = self._attributes
        if isinstance(attributes, BoundedAttributes):
            return attributes
        bounded = BoundedAttributes(
            self._max_attributes, attributes, immutable=False, max_value_len=self._max_length
        )
        self._attributes = bounded
        return bounded

    def _add_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        plain = self._attributes
        if (
            type(plain) is dict
            and self._has_room(plain, sum(1 for key in attributes if key not in plain))
            and all(self._is_plain(key, value) for key, value in attributes.items())
        ):
            for key, value in attributes.items():
                plain.pop(key, None)  # the SDK moves a key set again to the end
                plain[key] = value
            return
        # SDK private: BoundedAttributes._set_items, what Span.set_attributes calls.
        self._bounded()._set_items(attributes)

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        with self._lock:
            if self._end_time is not None:
                _sdk_logger.warning("Setting attribute on ended span.")
                return
            self._add_attributes(attributes)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        with self._lock:
            if self._end_time is not None:
                _sdk_logger.warning("Setting attribute on ended span.")
                return
            plain = self._attributes
            if (
                type(plain) is dict
                and self._is_plain(key, value)
                and (key in plain or self._has_room(plain, 1))
            ):
                plain.pop(key, None)  # the SDK moves a key set again to the end
                plain[key] = value
                return
            self._bounded()[key] = value

    # --- events, links, name, status ------------------------------------------------

    def _unless_ended(self, method: str) -> bool:
        # What the SDK's _check_span_ended decorator says, named after the SDK method.
        with self._lock:
            if self._end_time is None:
                return True
        _sdk_logger.warning("Tried calling %s on an ended span.", method)
        return False

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        limits = self._limits
        bounded = BoundedAttributes(
            limits.max_event_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        event = Event(name=name, attributes=bounded, timestamp=timestamp)
        with self._lock:
            ended = self._end_time is not None
            if not ended:
                if type(self._events) is tuple:  # the first event: the SDK's bounded list
                    self._events = BoundedList(limits.max_events)
                self._events.append(event)  # type: ignore[attr-defined]
        if ended:
            _sdk_logger.warning("Tried calling %s on an ended span.", "_add_event")

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        # The SDK's _is_valid_link: a link needs a valid context, attributes or a tracestate.
        if not (context and (context.is_valid or (attributes or context.trace_state))):
            return
        limits = self._limits
        bounded = BoundedAttributes(
            limits.max_link_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        link = Link(context=context, attributes=bounded)
        with self._lock:
            ended = self._end_time is not None
            if not ended:
                if type(self._links) is tuple:
                    self._links = BoundedList(limits.max_links)
                self._links.append(link)  # type: ignore[attr-defined]
        if ended:
            _sdk_logger.warning("Tried calling %s on an ended span.", "_add_link")

    def update_name(self, name: str) -> None:
        with self._lock:
            if self._end_time is None:
                self._name = name
                return
        _sdk_logger.warning("Tried calling %s on an ended span.", "update_name")

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        with self._lock:
            ended = self._end_time is not None
            if not ended:
                self._set_status(status, description)
        if ended:
            _sdk_logger.warning("Tried calling %s on an ended span.", "set_status")

    def _set_status(self, status: Status | StatusCode, description: str | None) -> None:
        # Span.set_status of the SDK: OK is final, UNSET never overwrites.
        if self._status and self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                _sdk_logger.warning(
                    "Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                    description,
                )
            self._status = status
        elif isinstance(status, StatusCode):
            if status is StatusCode.UNSET:
                return
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        # The SDK's own code: it builds the event's attributes and calls self.add_event.
        sdk_trace.Span.record_exception(self, exception, attributes, timestamp, escaped)  # type: ignore[arg-type]

    # --- the span's life -------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]

    def is_recording(self) -> bool:
        return self._end_time is None

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._end_time is not None:
                ended = True
            else:
                ended = False
                self._end_time = end_time if end_time is not None else time_ns()
        if ended:
            _sdk_logger.warning("Calling end() on an ended span.")
            return
        attributes = self._attributes
        if type(attributes) is not dict:
            # Frozen as the SDK freezes its own at the end: an immutable copy.
            frozen = BoundedAttributes(
                attributes.maxlen,  # type: ignore[union-attr]
                attributes,
                immutable=True,
                max_value_len=attributes.max_value_len,  # type: ignore[union-attr]
            )
            frozen.dropped = attributes.dropped  # type: ignore[union-attr]
            self._attributes = frozen
        self._record_end_metrics()
        processor = self._span_processor
        # SDK private: the multi-processor's _on_ending, called between end and on_end.
        processor._on_ending(self)
        processor.on_end(
            ReadableSpan(
                name=self._name,
                context=self._context,
                parent=self._parent,
                resource=self._resource,
                attributes=self._attributes,
                events=self._events,
                links=self._links,
                kind=self._kind,
                status=self._status,
                start_time=self._start_time,
                end_time=self._end_time,
                instrumentation_info=self._instrumentation_info,
                instrumentation_scope=self._instrumentation_scope,
            )
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        # The SDK span's: record the exception and the status, then end.
        if exc_val is not None and self.is_recording():
            self.record_exception(exception=exc_val, escaped=True)
            self.set_status(
                Status(
                    status_code=StatusCode.ERROR,
                    description=f"{type(exc_val).__name__}: {exc_val}",
                )
            )
        super().__exit__(exc_type, exc_val, exc_tb)


def _start_attributes(
    attributes: Mapping[str, types.AnyValue], limits: SpanLimits
) -> dict[str, types.AnyValue] | BoundedAttributes:
    """The sampler's attributes as the SDK span stores them at its start."""
    maximum = limits.max_span_attributes
    max_length = limits.max_span_attribute_length
    # A MappingProxyType (what SDK samplers return) copies its dict at C speed; dict()
    # would go through the mapping protocol key by key.
    plain = attributes.copy() if type(attributes) is MappingProxyType else dict(attributes)
    if (
        type(plain) is dict
        and "" not in plain
        and _all_str(plain)
        and _PLAIN.issuperset(map(type, plain.values()))
        and (maximum is None or len(plain) <= maximum)
        and (max_length is None or _within(plain, max_length))
    ):
        return plain  # keys are unique in a mapping: the order is the SDK's
    return BoundedAttributes(maximum, attributes, immutable=False, max_value_len=max_length)


def _all_str(keys: Iterable[object]) -> bool:
    # str.join accepts str and its subclasses only, as the SDK does for keys.
    try:
        "".join(keys)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def _within(plain: dict[str, types.AnyValue], max_length: int) -> bool:
    return all(len(value) <= max_length for value in plain.values() if isinstance(value, str))
