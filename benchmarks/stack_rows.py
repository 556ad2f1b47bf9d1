"""The rows of the full-stack comparison: one Starlette app, bare, with our layers, with the peers.

Every row answers the same request (`GET /users/42`, a sampled inbound `traceparent`, no
request id, so one is generated) from the same Starlette app. What the rows share is
built once by `Environment`, as a deployment would have it:

- one `TracerProvider` with a `BatchSpanProcessor` and an exporter that drops spans,
  used by our tracing layer and by OpenTelemetry's ASGI middleware alike (in-process,
  each timed batch ends with `Environment.flush`, so each row exports its own spans);
- a fresh prometheus-client `CollectorRegistry` per row for our metrics (starlette-exporter
  has no registry option: it gets a unique metric prefix per row in the default registry);
- a real sentry-sdk client whose DSN points at a closed port on 127.0.0.1, with no
  integrations patching the apps; the transport is never reached on the happy path.

A row is a factory (`Environment -> ASGI app`) plus the global textmap propagator its
middleware reads: ours for our rows (`observe()` installs it), OpenTelemetry's default for
the peers'. `Parts` holds the "unavoidable parts" rows: what any tracing + metrics +
request id stack must pay per request, measured with the same inputs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness import BATCH, http_scope, raw_app
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from otlp_receiver import Receiver
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from asgi_observe.errors.sentry import _Sdk
from asgi_observe.logs.correlation import install_log_record_factory, uninstall_log_record_factory
from asgi_observe.logs.request_id import RequestIdMiddleware
from asgi_observe.metrics.middleware import MetricsMiddleware
from asgi_observe.propagation import context_from_w3c, w3c_propagator
from asgi_observe.tracing.middleware import TracingMiddleware

SAMPLED = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
UNSAMPLED = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
SCOPE = http_scope("/users/42", headers=[(b"traceparent", SAMPLED)])
UNSAMPLED_SCOPE = http_scope("/users/42", headers=[(b"traceparent", UNSAMPLED)])
NEW_TRACE_SCOPE = http_scope("/users/42")


class DroppingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def user(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def starlette_app() -> Starlette:
    # A few routes before the matching one and a mount after it, as in a real app.
    routes = [Route(f"/other{i}/{{x}}", user) for i in range(10)]
    routes += [Route("/users/{user_id}", user), Mount("/admin", routes=[Route("/a", user)])]
    return Starlette(routes=routes)


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Environment:
    """The process-wide things every row shares; `close()` undoes all of it."""

    def __init__(self) -> None:
        import sentry_sdk

        self.provider = TracerProvider()
        # The processor's defaults, as a deployment has them.
        self.provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
        self.ours: TextMapPropagator = w3c_propagator()
        self.previous_textmap = propagate.get_global_textmap()
        # What OpenTelemetry installs when OTEL_PROPAGATORS is unset (tracecontext, baggage).
        self.otel_default = self.previous_textmap
        sentry_sdk.init(
            dsn=f"http://public@127.0.0.1:{closed_port()}/1",
            default_integrations=False,
            auto_enabling_integrations=False,
        )
        self._prefixes = 0
        self._exporting: dict[bool, Exporting] = {}

    def exporting(self, *, ours: bool) -> Exporting:
        """The production-shaped rows' environment, started on first use."""
        if ours not in self._exporting:
            self._exporting[ours] = Exporting(self, ours=ours)
        return self._exporting[ours]

    def prefix(self) -> str:
        """A metric prefix no other row used (starlette-exporter's default registry)."""
        self._prefixes += 1
        return f"bench_{os.getpid()}_{self._prefixes}"

    def flush(self) -> None:
        """Export every queued span now, in this thread.

        Called at the end of each timed batch, so the cost of exporting and freeing a
        row's spans lands in that row. Left to the processor's thread, it would land in
        whichever row runs when that thread gets the GIL: a row that releases it (as
        `os.urandom` does) would pay for its neighbours' spans.
        """
        self.provider.force_flush()

    def close(self) -> None:
        import sentry_sdk

        propagate.set_global_textmap(self.previous_textmap)
        uninstall_log_record_factory()
        # Dropped, not flushed: what the client aggregated off the happy path (the
        # release-health sessions sentry-sdk's middleware tracks) would go to the
        # closed port, and a test run would log the refused connections.
        client = sentry_sdk.get_client()
        flusher = getattr(client, "session_flusher", None)
        if flusher is not None:
            flusher.kill()
        transport = getattr(client, "transport", None)
        if transport is not None:
            transport.kill()
            client.transport = None
        sentry_sdk.get_global_scope().set_client(None)
        self.provider.shutdown()
        for exporting in self._exporting.values():
            exporting.close()


class Exporting:
    """The environment of the production-shaped rows: spans go out as a server sends them.

    Its own `TracerProvider`, with what `configure()` installs for OTLP over HTTP: a
    `BatchSpanProcessor` (its defaults) and the real `OTLPSpanExporter` (protobuf), posting
    to a loopback receiver in a process of its own (`otlp_receiver.py`; `endpoint` names
    one that runs already). Encoding and posting each span is then counted in the row
    that made it, ours and the peers' alike. Everything else is the shared Environment's.
    """

    def __init__(self, env: Environment, endpoint: str | None = None, *, ours: bool) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        from asgi_observe.setup.span_exporter import FastOTLPSpanExporter

        self._env = env
        self.receiver = Receiver() if endpoint is None else None
        endpoint = endpoint or self.receiver.endpoint  # type: ignore[union-attr]
        # Our rows export as configure() sets them up (the official exporter with our
        # encoding), the peers' and the SDK floor with the official exporter as it is.
        exporter = FastOTLPSpanExporter if ours else OTLPSpanExporter
        self.provider = TracerProvider()
        self.provider.add_span_processor(BatchSpanProcessor(exporter(endpoint=endpoint)))
        self.ours = env.ours
        self.otel_default = env.otel_default

    def prefix(self) -> str:
        return self._env.prefix()

    def flush(self) -> None:
        """As Environment.flush: encode and post the batch's spans now, in this thread."""
        self.provider.force_flush()

    def close(self) -> None:
        self.provider.shutdown()
        if self.receiver is not None:
            self.receiver.close()


Factory = Callable[[Any], Any]  # Environment or Exporting -> ASGI app


@dataclass(frozen=True)
class Row:
    name: str
    factory: Factory
    scope: dict[str, Any]
    ours_textmap: bool  # False: OpenTelemetry's default global propagator
    otlp: str = ""  # "ours" or "official": spans exported through OTLP/HTTP (`Exporting`)

    def textmap(self, env: Environment) -> TextMapPropagator:
        return env.ours if self.ours_textmap else env.otel_default

    def environment(self, env: Environment) -> Environment | Exporting:
        """What the row's factory gets, and whose `flush` ends each of its batches."""
        return env.exporting(ours=self.otlp == "ours") if self.otlp else env


# --- our layers ------------------------------------------------------------------------


def observe_full(env: Environment) -> Any:
    from asgi_observe.observe import observe

    app = observe(
        starlette_app(),
        configure=False,
        tracer_provider=env.provider,
        registry=CollectorRegistry(),
        sentry=True,
    )
    install_log_record_factory()  # observe() did; idempotent, undone by Environment.close
    return app


def ours_sentry(env: Environment) -> Any:
    from asgi_observe.errors.sentry import SentryMiddleware

    return SentryMiddleware(starlette_app())


# --- the peers -------------------------------------------------------------------------


def correlation_id(env: Environment) -> Any:
    from asgi_correlation_id import CorrelationIdMiddleware

    return CorrelationIdMiddleware(starlette_app())


def sentry_asgi(env: Environment) -> Any:
    from sentry_sdk.integrations.asgi import SentryAsgiMiddleware

    return SentryAsgiMiddleware(starlette_app())


def otel_asgi(env: Environment, *, message_spans: bool = True) -> Any:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    excluded: Any = None if message_spans else ["receive", "send"]
    return OpenTelemetryMiddleware(
        starlette_app(), tracer_provider=env.provider, exclude_spans=excluded
    )


def starlette_exporter(env: Environment, app: Any = None) -> Any:
    from starlette_exporter import PrometheusMiddleware

    return PrometheusMiddleware(starlette_app() if app is None else app, prefix=env.prefix())


def span_only(env: Environment) -> Any:
    """The floor of any tracing layer: one sampled span, its inputs computed beforehand."""
    parts = Parts(env)
    app = starlette_app()
    server = trace.SpanKind.SERVER
    start = 1_700_000_000_000_000_000

    async def span_around(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        span = parts.tracer.start_span(
            "GET", parts.parent, server, attributes=parts.attributes, start_time=start
        )
        await app(scope, receive, send)
        span.set_attributes(parts.end_attributes)
        span.update_name("GET /users/{user_id}")
        span.end(start + 50_000)

    return span_around


def peer_stack(env: Environment) -> Any:
    """asgi-correlation-id -> sentry-sdk -> OpenTelemetry -> starlette-exporter -> app."""
    from asgi_correlation_id import CorrelationIdMiddleware
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from sentry_sdk.integrations.asgi import SentryAsgiMiddleware

    app = starlette_exporter(env, starlette_app())
    app = OpenTelemetryMiddleware(app, tracer_provider=env.provider)
    app = SentryAsgiMiddleware(app)
    return CorrelationIdMiddleware(app)


BARE_RAW = "bare raw ASGI app"
BARE = "bare Starlette"
# The production-shaped rows: every span is encoded and posted through OTLP/HTTP.
OURS_FULL = "observe() full, sampled, OTLP export"
OURS_UNSAMPLED = "observe() full, unsampled"  # no span to export
PEERS_FULL = "peer stack (4 middlewares), OTLP export"
SPAN_ONLY = "floor: one sampled SDK span, nothing else, OTLP export"
# Issue 8's rows, whose spans go to an exporter that drops them.
EXCLUDED = ", export excluded"
OURS_FULL_EXCLUDED = "observe() full, sampled" + EXCLUDED
PEERS_FULL_EXCLUDED = "peer stack (4 middlewares)" + EXCLUDED
SPAN_ONLY_EXCLUDED = "floor: one sampled SDK span, nothing else" + EXCLUDED


def _tracing(env: Any) -> Any:
    return TracingMiddleware(starlette_app(), tracer_provider=env.provider)


def _no_message_spans(env: Any) -> Any:
    return otel_asgi(env, message_spans=False)


# Rows that make spans: (name without suffix, factory, scope, our propagator, exporter).
_SPAN_ROWS: tuple[tuple[str, Factory, dict[str, Any], bool, str], ...] = (
    ("ours: TracingMiddleware", _tracing, SCOPE, True, "ours"),
    ("observe() full, sampled", observe_full, SCOPE, True, "ours"),
    ("observe() full, new trace", observe_full, NEW_TRACE_SCOPE, True, "ours"),
    ("peer: OpenTelemetry ASGI", otel_asgi, SCOPE, False, "official"),
    ("peer: OpenTelemetry ASGI, no message spans", _no_message_spans, SCOPE, False, "official"),
    ("peer stack (4 middlewares)", peer_stack, SCOPE, False, "official"),
    ("floor: one sampled SDK span, nothing else", span_only, SCOPE, True, "official"),
)

ROWS: tuple[Row, ...] = (
    Row(BARE_RAW, lambda env: raw_app, SCOPE, True),
    Row(BARE, lambda env: starlette_app(), SCOPE, True),
    Row(
        "ours: RequestIdMiddleware",
        lambda env: RequestIdMiddleware(starlette_app()),
        SCOPE,
        True,
    ),
    Row(
        "ours: MetricsMiddleware",
        lambda env: MetricsMiddleware(starlette_app(), registry=CollectorRegistry()),
        SCOPE,
        True,
    ),
    Row("ours: SentryMiddleware", ours_sentry, SCOPE, True),
    Row(OURS_UNSAMPLED, observe_full, UNSAMPLED_SCOPE, True),
    Row("peer: asgi-correlation-id", correlation_id, SCOPE, False),
    Row("peer: sentry-sdk ASGI", sentry_asgi, SCOPE, False),
    Row("peer: starlette-exporter", starlette_exporter, SCOPE, False),
    *(Row(f"{name}, OTLP export", f, sc, t, otlp=x) for name, f, sc, t, x in _SPAN_ROWS),
    *(Row(name + EXCLUDED, f, sc, t) for name, f, sc, t, _ in _SPAN_ROWS),
)


# --- the unavoidable parts -------------------------------------------------------------


class Parts:
    """What any stack with a sampled span, a duration histogram and an id pays per request.

    Each callable runs `BATCH` times per call, like the request rows. The span gets
    exactly the SDK calls and values our tracing layer makes: start with the start
    attributes under the extracted parent, the route and status set at the end, the name
    updated, end with explicit timestamps.

    An unsampled request still makes some calls whatever the stack: the SDK's start and
    end of a span under the unsampled parent (its sampler decides), reading the
    ``traceparent`` that says so, the histogram and gauge, the id, and the forks of
    sentry-sdk's current and isolation scopes that keep the request's breadcrumbs, user
    and tags apart (both, as sentry-sdk's own integrations fork them: issue 13).
    """

    def __init__(self, env: Environment) -> None:
        from asgi_observe.metrics.families import DURATION_BUCKETS, families_for

        self.tracer = env.provider.get_tracer("asgi_observe")
        self.flush = env.flush
        self.parent = env.ours.extract({"traceparent": SAMPLED.decode()})
        self.attributes: dict[str, Any] = {
            "http.request.method": "GET",
            "url.scheme": "http",
            "url.path": "/users/42",
            "server.address": "127.0.0.1",
            "server.port": 8000,
            "client.address": "127.0.0.1",
            "client.port": 50000,
            "network.protocol.version": "1.1",
            "user_agent.original": "bench/1.0",
        }
        self.end_attributes = {"http.route": "/users/{user_id}", "http.response.status_code": 200}
        families = families_for(
            CollectorRegistry(),
            "",
            buckets=DURATION_BUCKETS,
            body_sizes=False,
            max_label_sets=2000,
        )
        self.observe = families.children(("GET", "/users/{user_id}", 200)).duration
        self.active = families.active.labels("GET")
        self.unsampled_parent = env.ours.extract({"traceparent": UNSAMPLED.decode()})
        self.sentry = _Sdk.load()

    def span(self) -> None:
        tracer, parent, attributes = self.tracer, self.parent, self.attributes
        server = trace.SpanKind.SERVER
        for _ in range(BATCH):
            start = 1_700_000_000_000_000_000
            span = tracer.start_span("GET", parent, server, attributes=attributes, start_time=start)
            span.set_attributes(self.end_attributes)
            span.update_name("GET /users/{user_id}")
            span.end(start + 50_000)
        self.flush()

    def metrics(self) -> None:
        observe, active = self.observe, self.active
        for _ in range(BATCH):
            active.inc()
            active.dec()
            observe(0.000_05)

    def request_id(self) -> None:
        urandom = os.urandom
        for _ in range(BATCH):
            urandom(16).hex()

    def unsampled_span(self) -> None:
        tracer, parent, attributes = self.tracer, self.unsampled_parent, self.attributes
        server = trace.SpanKind.SERVER
        for _ in range(BATCH):
            start = 1_700_000_000_000_000_000
            span = tracer.start_span("GET", parent, server, attributes=attributes, start_time=start)
            span.end(start + 50_000)

    def parse_traceparent(self) -> None:
        traceparents: list[bytes] = [UNSAMPLED]
        for _ in range(BATCH):
            context_from_w3c(traceparents, (), ())

    def isolation(self) -> None:
        sdk = self.sentry
        for _ in range(BATCH):
            sdk.leave(sdk.enter(sdk.get_isolation_scope().fork()))  # enter forks the current


PART_SPAN = "part: one sampled SDK span"
PART_METRICS = "part: histogram observe + gauge inc/dec"
PART_ID = "part: os.urandom(16).hex()"
PART_NAMES = (PART_SPAN, PART_METRICS, PART_ID)
PART_UNSAMPLED_SPAN = "part: one unsampled SDK span"
PART_PARSE = "part: traceparent to context"
PART_ISOLATION = "part: Sentry current + isolation scope forks"
# What an unsampled request through any stack with the same features must call.
UNSAMPLED_PART_NAMES = (PART_UNSAMPLED_SPAN, PART_PARSE, PART_METRICS, PART_ID, PART_ISOLATION)
ALL_PART_NAMES = (*PART_NAMES, PART_UNSAMPLED_SPAN, PART_PARSE, PART_ISOLATION)


def part_callables(parts: Parts) -> dict[str, Callable[[], None]]:
    return {
        PART_SPAN: parts.span,
        PART_METRICS: parts.metrics,
        PART_ID: parts.request_id,
        PART_UNSAMPLED_SPAN: parts.unsampled_span,
        PART_PARSE: parts.parse_traceparent,
        PART_ISOLATION: parts.isolation,
    }
