"""The prometheus-client metric families of MetricsMiddleware and their bounded label cache.

Families are created once per (registry, namespace): prometheus-client refuses a second
metric of the same name in one registry, and two middlewares sharing a registry (an app
factory called twice, a test suite) must record into the same series, under the same cap.
"""

from __future__ import annotations

import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import REGISTRY, Gauge, Histogram

# https://opentelemetry.io/docs/specs/semconv/http/http-metrics/#metric-httpserverrequestduration
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# The conventions advise no buckets for body sizes: powers of ten from 100 B to 100 MB.
SIZE_BUCKETS = (100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)

UNMATCHED_ROUTE = "_unmatched"
OVERFLOW = "_overflow"
# prometheus-client keeps only the latest exemplar of each bucket, and a scrape reads it
# every 15-60 s: one exemplar per bucket per second shows the same links for a fraction
# of the cost of validating and storing one per sampled request (docs/performance.md).
EXEMPLAR_INTERVAL_S = 1.0

DURATION = "http_server_request_duration_seconds"
ACTIVE = "http_server_active_requests"
REQUEST_SIZE = "http_server_request_body_size_bytes"
RESPONSE_SIZE = "http_server_response_body_size_bytes"
_LABELS = ("http_request_method", "http_route", "http_response_status_code")

Observe = Callable[..., None]
SeriesKey = tuple[str, str, Any]

_monotonic = time.monotonic

_families: weakref.WeakKeyDictionary[Any, dict[str, Families]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


class Families:
    """The metric objects of one (registry, namespace) and their label-children cache."""

    def __init__(
        self,
        registry: Any,
        namespace: str,
        *,
        buckets: tuple[float, ...],
        body_sizes: bool,
        max_label_sets: int,
    ) -> None:
        self.config = (buckets, body_sizes, max_label_sets)
        self.duration = Histogram(
            DURATION,
            "Duration of HTTP server requests, to the final response event.",
            _LABELS,
            namespace=namespace,
            buckets=buckets,
            registry=registry,
        )
        # livesum: in multi-process mode the scrape adds up the live workers' gauges.
        self.active = Gauge(
            ACTIVE,
            "Number of HTTP server requests in flight.",
            ("http_request_method",),
            namespace=namespace,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.request_size = self.response_size = None
        if body_sizes:
            self.request_size = _size_histogram(REQUEST_SIZE, "request", namespace, registry)
            self.response_size = _size_histogram(RESPONSE_SIZE, "response", namespace, registry)
        self._max_label_sets = max_label_sets
        self._bounds = (*buckets, float("inf"))
        self._children: dict[SeriesKey, Series] = {}
        self._overflow: Series | None = None

    def children(self, key: SeriesKey) -> Series:
        """The bound label children of a label set; past the cap, the overflow set."""
        children = self._children.get(key)
        if children is not None:
            return children
        with _lock:
            children = self._children.get(key)
            if children is None:
                if len(self._children) >= self._max_label_sets:
                    return self._overflow_children()
                children = self._children[key] = self._bind(key[0], key[1], str(key[2]))
        return children

    def _overflow_children(self) -> Series:
        if self._overflow is None:
            self._overflow = self._bind(OVERFLOW, OVERFLOW, OVERFLOW)
        return self._overflow

    def _bind(self, method: str, route: str, status: str) -> Series:
        request = self.request_size
        response = self.response_size
        return Series(
            self.duration.labels(method, route, status).observe,
            None if request is None else request.labels(method, route, status).observe,
            None if response is None else response.labels(method, route, status).observe,
            self._bounds,
        )


class Series:
    """The bound `.observe` methods of one label set, and when its buckets want exemplars."""

    __slots__ = ("_bounds", "_exemplar_due", "duration", "request_size", "response_size")

    def __init__(
        self,
        duration: Observe,
        request_size: Observe | None,
        response_size: Observe | None,
        bounds: tuple[float, ...],
    ) -> None:
        self.duration = duration
        self.request_size = request_size
        self.response_size = response_size
        self._bounds = bounds  # the duration buckets' upper bounds, +Inf last
        self._exemplar_due = [0.0] * len(bounds)  # per bucket: monotonic time

    def wants_exemplar(self, duration_s: float) -> bool:
        """True at most once per `EXEMPLAR_INTERVAL_S` for the bucket `duration_s` falls in.

        Two threads may both get True for one bucket; the later exemplar simply wins.
        """
        # prometheus-client counts a value in the first bucket whose bound is >= it.
        bucket = bisect_left(self._bounds, duration_s)
        now = _monotonic()
        if now < self._exemplar_due[bucket]:
            return False
        self._exemplar_due[bucket] = now + EXEMPLAR_INTERVAL_S
        return True


def _size_histogram(name: str, what: str, namespace: str, registry: Any) -> Histogram:
    return Histogram(
        name,
        f"Size of HTTP server {what} bodies, in bytes, as they flowed through the server.",
        _LABELS,
        namespace=namespace,
        buckets=SIZE_BUCKETS,
        registry=registry,
    )


def families_for(
    registry: Any,
    namespace: str,
    *,
    buckets: Sequence[float],
    body_sizes: bool,
    max_label_sets: int,
) -> Families:
    """The families of (registry, namespace), created on first use.

    Raises ValueError when they exist with another configuration.
    """
    registry = REGISTRY if registry is None else registry
    config = (tuple(buckets), body_sizes, max_label_sets)
    with _lock:
        by_namespace = _families.setdefault(registry, {})
        families = by_namespace.get(namespace)
        if families is None:
            families = by_namespace[namespace] = Families(
                registry,
                namespace,
                buckets=config[0],
                body_sizes=body_sizes,
                max_label_sets=max_label_sets,
            )
        elif families.config != config:
            raise ValueError(
                f"metrics of namespace {namespace!r} already exist in this registry with "
                "other buckets, body sizes or max_label_sets; use another namespace or registry"
            )
    return families


def existing_families(registry: Any, namespace: str) -> Families | None:
    """The families of (registry, namespace) if a MetricsMiddleware created them, else None.

    For readers of the same series (the local viewer); never creates anything.
    """
    registry = REGISTRY if registry is None else registry
    with _lock:
        by_namespace = _families.get(registry)
        return None if by_namespace is None else by_namespace.get(namespace)
