"""The OpenTelemetry meter instruments of MetricsMiddleware and their cached attribute sets.

Instruments are created once per meter provider, like the Prometheus families once per
registry: two middlewares on one provider record into the same instruments, under one cap.
The attribute dict of each (method, route, status, scheme, version, error) is built once and
reused, so a request costs the SDK's own work and nothing more (docs/performance.md).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.util.types import Attributes

# https://opentelemetry.io/docs/specs/semconv/http/http-metrics/
DURATION = "http.server.request.duration"
ACTIVE = "http.server.active_requests"
REQUEST_SIZE = "http.server.request.body.size"
RESPONSE_SIZE = "http.server.response.body.size"
# What the SDK itself reports past its cardinality limit (the metrics SDK spec,
# "Cardinality limits"): one overflow series, whatever the attributes were.
OVERFLOW_ATTRIBUTES: Attributes = {"otel.metric.overflow": True}
METER_NAME = "asgi_observe"

# (method, route, status, url.scheme, network.protocol.version, error.type or None)
SeriesKey = tuple[str, str, int, str, str, "str | None"]
ActiveKey = tuple[str, str]

_instruments: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


class Instruments:
    """The instruments of one meter provider, their attribute cache and in-flight counts."""

    def __init__(
        self,
        meter_provider: Any,
        *,
        buckets: tuple[float, ...],
        body_sizes: bool,
        max_label_sets: int,
    ) -> None:
        self.config = (buckets, body_sizes, max_label_sets)
        meter = meter_provider.get_meter(METER_NAME)
        self.duration = meter.create_histogram(
            DURATION,
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=buckets,
        )
        self.request_size = self.response_size = None
        if body_sizes:
            self.request_size = _size_histogram(meter, REQUEST_SIZE, "request")
            self.response_size = _size_histogram(meter, RESPONSE_SIZE, "response")
        # In-flight requests are counted here and read by the SDK at each collection:
        # the same cumulative sum an UpDownCounter exports, without two SDK
        # measurements per request (docs/performance.md).
        self._active: dict[ActiveKey, list[int]] = {}
        self._active_attributes: dict[ActiveKey, Attributes] = {}
        meter.create_observable_up_down_counter(
            ACTIVE,
            callbacks=[self._observe_active],
            unit="{request}",
            description="Number of active HTTP server requests.",
        )
        self._max_label_sets = max_label_sets
        self._attributes: dict[SeriesKey, Attributes] = {}
        self._series_lock = threading.Lock()

    def active(self, method: str, scheme: str) -> list[int]:
        """The in-flight counter of (method, scheme); the caller adds and subtracts 1."""
        key = (method, scheme)
        counter = self._active.get(key)
        if counter is None:
            with self._series_lock:
                counter = self._active.get(key)
                if counter is None:
                    if len(self._active) >= self._max_label_sets:
                        key = ("", "")  # the overflow counter
                        counter = self._active.get(key)
                    if counter is None:
                        counter = self._active[key] = [0]
                        self._active_attributes[key] = (
                            OVERFLOW_ATTRIBUTES
                            if key == ("", "")
                            else {"http.request.method": method, "url.scheme": scheme}
                        )
        return counter

    def _observe_active(self, options: CallbackOptions) -> Iterable[Observation]:
        attributes = self._active_attributes
        return [Observation(counter[0], attributes[key]) for key, counter in self._active.items()]

    def attributes(self, key: SeriesKey) -> Attributes:
        """The attribute dict of a series; past the cap, the overflow attributes."""
        attributes = self._attributes.get(key)
        if attributes is not None:
            return attributes
        with self._series_lock:
            attributes = self._attributes.get(key)
            if attributes is None:
                if len(self._attributes) >= self._max_label_sets:
                    return OVERFLOW_ATTRIBUTES
                attributes = self._attributes[key] = _series_attributes(key)
        return attributes


def _series_attributes(key: SeriesKey) -> Attributes:
    method, route, status, scheme, version, error_type = key
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "http.route": route,
        "http.response.status_code": status,
        "url.scheme": scheme,
        "network.protocol.version": version,
    }
    if error_type is not None:
        attributes["error.type"] = error_type
    return attributes


def _size_histogram(meter: Any, name: str, what: str) -> Any:
    return meter.create_histogram(
        name, unit="By", description=f"Size of HTTP server {what} bodies."
    )


def instruments_for(
    meter_provider: Any,
    *,
    buckets: Sequence[float],
    body_sizes: bool,
    max_label_sets: int,
) -> Instruments:
    """The instruments of `meter_provider` (the global one when None), created on first use.

    Raises ValueError when they exist with another configuration.
    """
    provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
    config = (tuple(buckets), body_sizes, max_label_sets)
    with _lock:
        instruments = _instruments.get(provider)
        if instruments is None:
            instruments = _instruments[provider] = Instruments(
                provider, buckets=config[0], body_sizes=body_sizes, max_label_sets=max_label_sets
            )
        elif instruments.config != config:
            raise ValueError(
                "OpenTelemetry request metrics already exist on this meter provider with "
                "other buckets, body sizes or max_label_sets"
            )
    return instruments
