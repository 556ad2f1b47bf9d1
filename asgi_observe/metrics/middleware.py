"""MetricsMiddleware: RED metrics per route template, through prometheus-client and/or the meter."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from asgi_observe._core.http import OTHER_METHOD
from asgi_observe._core.http import known_methods as _validate_methods
from asgi_observe._core.logsafe import log_safely
from asgi_observe._core.record import RequestRecord, RouteResolver, ensure_record, observe_message
from asgi_observe._core.types import ASGIApp, Message, Receive, Scope, Send
from asgi_observe.frameworks.routes import resolve_route
from asgi_observe.metrics.backend import resolve_backend
from asgi_observe.metrics.families import (
    DURATION_BUCKETS,
    OVERFLOW,
    UNMATCHED_ROUTE,
    Families,
    families_for,
)
from asgi_observe.metrics.otel import Instruments, instruments_for

__all__ = ["DURATION_BUCKETS", "OVERFLOW", "UNMATCHED_ROUTE", "MetricsMiddleware"]

# https://prometheus.io/docs/concepts/data_model/#metric-names-and-labels
_NAMESPACE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_DEFAULT_MAX_LABEL_SETS = 2000  # the OpenTelemetry SDK's default cardinality limit
_log = logging.getLogger("asgi_observe.metrics")
_active_lock = threading.Lock()


class MetricsMiddleware:
    """Record request duration, in-flight requests and (opt-in) body sizes per route.

    prometheus-client metrics (names get ``namespace + "_"`` in front when a namespace is
    given): ``http_server_request_duration_seconds`` (histogram; labels
    ``http_request_method``, ``http_route``, ``http_response_status_code``),
    ``http_server_active_requests`` (gauge; label ``http_request_method``) and, with
    ``record_body_sizes``, ``http_server_request_body_size_bytes`` and
    ``http_server_response_body_size_bytes``. Through the OpenTelemetry meter:
    ``http.server.request.duration``, ``http.server.active_requests`` and
    ``http.server.request.body.size`` / ``http.server.response.body.size``, with the
    stable HTTP attributes (see docs/metrics.md). The route is the framework's route
    template (``_unmatched`` when no route matched); past ``max_label_sets`` label
    sets, new ones are counted under one overflow set. Only HTTP is measured; websocket
    and lifespan scopes pass through.

    Args:
        app: the ASGI application to wrap.
        registry: the prometheus-client registry; the default registry when None.
            Middlewares sharing a registry and namespace share their metrics.
        namespace: prefix of every prometheus-client metric name ("" for none).
        buckets: duration histogram buckets, in seconds.
        max_label_sets: the most label sets a histogram holds before overflowing.
        record_body_sizes: also record request and response body sizes in bytes.
        exemplars: attach the trace id of a sampled span to prometheus-client
            observations (the meter's exemplars follow the SDK's exemplar filter).
        known_methods: HTTP methods kept as labels; others become ``_OTHER``.
        route_resolver: returns the route template from the scope after routing.
        backend: "prometheus", "otel" (or "otlp"), "both" or "auto"; None reads
            ``ASGI_OBSERVE_METRICS_BACKEND`` ("auto" when unset). "auto" records through
            the meter when a meter provider is active, else with prometheus-client.
        meter_provider: the meter provider; the global one when None.

    Since 0.1.0; `backend` and `meter_provider` since 0.2.0.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: Any = None,
        namespace: str = "",
        buckets: Sequence[float] = DURATION_BUCKETS,
        max_label_sets: int = _DEFAULT_MAX_LABEL_SETS,
        record_body_sizes: bool = False,
        exemplars: bool = True,
        known_methods: Iterable[str] | None = None,
        route_resolver: RouteResolver | None = None,
        backend: str | None = None,
        meter_provider: Any = None,
    ) -> None:
        if not isinstance(namespace, str) or (namespace and not _NAMESPACE.fullmatch(namespace)):
            raise ValueError(f"namespace {namespace!r} is not a valid Prometheus name prefix")
        if type(max_label_sets) is not int or max_label_sets < 1:
            raise ValueError(f"max_label_sets must be a positive int, not {max_label_sets!r}")
        buckets = tuple(float(bound) for bound in buckets)
        if not buckets or list(buckets) != sorted(set(buckets)) or buckets[0] <= 0:
            raise ValueError("buckets must be positive, strictly increasing and not empty")
        if registry is not None and not callable(getattr(registry, "register", None)):
            raise TypeError("registry must be a prometheus_client CollectorRegistry")
        if route_resolver is not None and not callable(route_resolver):
            raise TypeError("route_resolver must be callable")
        if meter_provider is not None and not callable(getattr(meter_provider, "get_meter", None)):
            raise TypeError("meter_provider must be an OpenTelemetry MeterProvider")
        prometheus, otel = resolve_backend(backend, meter_provider=meter_provider)
        self.app = app
        self._body_sizes = bool(record_body_sizes)
        self._families: Families | None = None
        self._otel: Instruments | None = None
        if prometheus:
            self._families = families_for(
                registry,
                namespace,
                buckets=buckets,
                body_sizes=self._body_sizes,
                max_label_sets=max_label_sets,
            )
        if otel:
            self._otel = instruments_for(
                meter_provider,
                buckets=buckets,
                body_sizes=self._body_sizes,
                max_label_sets=max_label_sets,
            )
        # prometheus-client keeps no exemplars in multi-process mode; skip building them.
        multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ or (
            "prometheus_multiproc_dir" in os.environ
        )
        self._exemplars = bool(exemplars) and not multiprocess
        self._methods = _validate_methods(known_methods)
        self._active: dict[str, Any] = {}
        if self._families is not None:
            active = self._families.active
            self._active = {m: active.labels(m) for m in (*self._methods, OTHER_METHOD)}
        self._resolve_route = route_resolver or resolve_route

    @property
    def backends(self) -> tuple[str, ...]:
        """Where this middleware records: "prometheus", "otel", or both. Since 0.2.0."""
        chosen = ("prometheus", self._families), ("otel", self._otel)
        return tuple(name for name, used in chosen if used is not None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope, record = ensure_record(scope)
        method = scope["method"]
        if method not in self._methods:
            method = OTHER_METHOD
        active = self._active.get(method)
        if active is not None:
            active.inc()
        otel = self._otel
        in_flight = None
        if otel is not None:
            in_flight = otel.active(method, scope.get("scheme") or "http")
            with _active_lock:
                in_flight[0] += 1
        sizes = [0, 0]  # request and response body bytes that flowed, when recorded
        count_sizes = self._body_sizes
        done = False

        def finish(status: Any, error: BaseException | None = None) -> None:
            nonlocal done
            done = True
            try:
                if active is not None:
                    active.dec()
                if in_flight is not None:
                    with _active_lock:
                        in_flight[0] -= 1
                self._observe(scope, record, method, status, sizes, error)
            except Exception:  # a metrics fault must never change the app's response
                log_safely(
                    _log, logging.ERROR, "asgi_observe could not record the request metrics",
                    exc_info=True,
                )  # fmt: skip

        async def send_wrapper(message: Message) -> None:
            if count_sizes and message["type"] == "http.response.body":
                sizes[1] += len(message.get("body", b""))
            if not observe_message(record, message) or done:
                await send(message)
                return
            try:
                await send(message)
            finally:
                finish(record.status)

        app_receive = receive
        if count_sizes:

            async def receive_sizes() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    sizes[0] += len(message.get("body", b""))
                return message

            app_receive = receive_sizes

        try:
            await self.app(scope, app_receive, send_wrapper)
        except BaseException as exc:
            if not done:
                finish(500, exc)  # counted as a server error whatever had been sent
            raise
        finally:
            if not done:
                # Returned without completing the response: the server answers 500 if
                # nothing was started, else the client got a truncated response.
                finish(record.status if record.response_started else 500)

    def _observe(
        self,
        scope: Scope,
        record: RequestRecord,
        method: str,
        status: Any,
        sizes: list[int],
        error: BaseException | None,
    ) -> None:
        route = record.resolve_route(scope, self._resolve_route)
        if route is None:
            route = UNMATCHED_ROUTE
        duration = record.duration_s
        if self._families is not None:
            self._observe_prometheus(self._families, record, (method, route, status), sizes)
        otel = self._otel
        if otel is not None:
            error_type = _error_type(error) if error is not None else None
            if error_type is None and type(status) is int and status >= 500:
                error_type = str(status)
            attributes = otel.attributes(
                (
                    method,
                    route,
                    status,
                    scope.get("scheme") or "http",
                    scope.get("http_version") or "1.1",
                    error_type,
                )
            )
            # context=None: the SDK's exemplar filter reads the current context, where
            # TracingMiddleware left the request's span.
            otel.duration.record(duration, attributes)
            if otel.request_size is not None and otel.response_size is not None:
                otel.request_size.record(sizes[0], attributes)
                otel.response_size.record(sizes[1], attributes)

    def _observe_prometheus(
        self, families: Families, record: RequestRecord, key: Any, sizes: list[int]
    ) -> None:
        series = families.children(key)
        duration = record.duration_s
        trace_id = _sampled_trace_id(record) if self._exemplars else None
        if trace_id is not None and series.wants_exemplar(duration):
            series.duration(duration, _exemplar(trace_id))
        else:
            series.duration(duration)
        if series.request_size is not None and series.response_size is not None:
            exemplar = None if trace_id is None else _exemplar(trace_id)
            series.request_size(sizes[0], exemplar)
            series.response_size(sizes[1], exemplar)


def _error_type(exc: BaseException) -> str:
    # As the span's error.type: the class name, module-qualified outside builtins.
    exc_type = type(exc)
    module, qualname = exc_type.__module__, exc_type.__qualname__
    return qualname if module == "builtins" else f"{module}.{qualname}"


def _sampled_trace_id(record: RequestRecord) -> int | None:
    span = record.span
    if span is None:
        return None
    context = span.get_span_context()
    return context.trace_id if context.trace_flags.sampled else None


def _exemplar(trace_id: int) -> dict[str, str]:
    return {"trace_id": format(trace_id, "032x")}
