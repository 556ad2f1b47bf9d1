"""observe(): every asgi_observe layer around an app, in the right order."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from asgi_observe._core.dispatch import PathDispatcher
from asgi_observe._core.http import path_set
from asgi_observe._core.record import RouteResolver
from asgi_observe._core.types import ASGIApp
from asgi_observe.errors.hooks import register_error_hooks
from asgi_observe.frameworks.django import is_django_handler, register_django_route_hook
from asgi_observe.frameworks.quart import is_quart_app, register_quart_route_hook
from asgi_observe.logs.correlation import install_log_record_factory
from asgi_observe.logs.request_id import RequestIdMiddleware
from asgi_observe.metrics.app import metrics_app
from asgi_observe.metrics.backend import resolve_backend
from asgi_observe.metrics.middleware import MetricsMiddleware
from asgi_observe.propagation import install_global_propagator
from asgi_observe.setup import config as _config
from asgi_observe.setup.lifespan import LifespanMiddleware
from asgi_observe.tracing.middleware import TracingMiddleware

if TYPE_CHECKING:
    from asgi_observe.viewer import Viewer

__all__ = ["observe"]


def observe(
    app: Any,
    *,
    configure: bool = True,
    install_propagator: bool = True,
    tracer_provider: trace.TracerProvider | None = None,
    request_id_header: str = "X-Request-ID",
    access_log: bool | logging.Logger = False,
    log_correlation: bool = True,
    metrics: bool = True,
    metrics_backend: str | None = None,
    registry: Any = None,
    namespace: str = "",
    metrics_path: str | None = None,
    health: ASGIApp | None = None,
    health_path: str | None = None,
    sentry: bool | None = None,
    exclude_paths: Iterable[str] = (),
    exclude_prefixes: Iterable[str] = (),
    known_methods: Iterable[str] | None = None,
    route_resolver: RouteResolver | None = None,
    viewer_path: str | None = None,
    viewer: Viewer | None = None,
    mcp_paths: Iterable[str] | None = None,
    mcp_names: Iterable[str] = (),
    mcp_spans: bool = False,
    mcp_sentry_tool_errors: bool = False,
) -> ASGIApp:
    """Wrap `app` in every asgi_observe layer, in the right order, and return the result.

    Outermost first: lifespan (flushes telemetry at shutdown), the in-band endpoints,
    request id, tracing, metrics, Sentry, then `app`. `app` may be any ASGI callable or a
    framework's app object (Starlette, FastAPI, Litestar, Quart, Django's
    `get_asgi_application()`; for Quart and Django a route hook is registered on the app
    so metrics and spans get the route it resolved).

    Args:
        app: the ASGI application.
        configure: call `configure()` (OpenTelemetry and Sentry from the environment);
            providers and clients the application already set are kept.
        install_propagator: install asgi_observe's W3C propagators globally, unless
            ``OTEL_PROPAGATORS`` chose others.
        tracer_provider: spans go here instead of the global provider.
        request_id_header: the header carrying the request id, in and out.
        access_log: True, or a logger, for one access log record per request.
        log_correlation: stamp request_id, trace_id and span_id on every log record.
        metrics: include the RED metrics layer.
        metrics_backend: where it records: "prometheus", "otel" (or "otlp"), "both", or
            "auto"; None reads ``ASGI_OBSERVE_METRICS_BACKEND`` ("auto" when unset).
            "auto" records through the OpenTelemetry meter when a meter provider is
            active, with prometheus-client when none is, and with both when
            `metrics_path` serves an exposition next to an active meter provider.
        registry: the prometheus-client registry (the default one when None).
        namespace: prefix of the metric names.
        metrics_path: serve the metrics exposition at this path (e.g. "/metrics").
        health: an ASGI app to mount at `health_path` (`health_app()` when None).
        health_path: mount the health probes here (e.g. "/health").
        sentry: include the Sentry layer; None includes it when a Sentry client with a
            DSN is active.
        exclude_paths: paths served without any observability (exact match), in
            addition to ``OTEL_PYTHON_EXCLUDED_URLS``.
        exclude_prefixes: path prefixes served without any observability.
        known_methods: HTTP methods reported as they are; others become ``_OTHER``.
        route_resolver: returns the route template from the scope, for frameworks
            asgi_observe does not know.
        viewer_path: mount the local viewer (traces, RED, errors, logs) here, e.g.
            "/_observe"; off when None. Loopback clients only; see docs/viewer.md.
        viewer: the `asgi_observe.viewer.Viewer` to feed and show (its limits and who
            may see it); a new one when None. Giving one turns the viewer on (at
            "/_observe" unless `viewer_path` says otherwise).
        mcp_paths: the paths of MCP Streamable HTTP endpoints (mount prefix included);
            None finds those of the `mcp` and `fastmcp` SDKs in the app's routes, once,
            here; an empty list turns MCP awareness off (docs/frameworks/mcp.md).
        mcp_names: tool and prompt names that may be metric labels before the server
            lists them.
        mcp_spans: emit an MCP SERVER span per JSON-RPC request, for servers that emit
            none themselves.
        mcp_sentry_tool_errors: also send ``isError`` tool results and JSON-RPC error
            answers to Sentry (a tool that raises is reported either way).

    Since 0.1.0; `metrics_backend` since 0.2.0.
    """
    bypass_paths = set(path_set("exclude_paths", exclude_paths))
    bypass_prefixes = list(path_set("exclude_prefixes", exclude_prefixes))
    if viewer is not None and viewer_path is None:
        viewer_path = "/_observe"
    mcp_endpoints = None if mcp_paths is None else path_set("mcp_paths", mcp_paths)
    for option, path in (
        ("metrics_path", metrics_path),
        ("health_path", health_path),
        ("viewer_path", viewer_path),
    ):
        if path is not None:
            path_set(option, [path])
    if viewer_path is not None and viewer_path.rstrip("/") == "":
        raise ValueError("viewer_path cannot be '/': it would hide the whole app")
    handle = _config.configure(install_propagator=install_propagator) if configure else None
    if install_propagator and handle is None:
        install_global_propagator()
    if log_correlation:
        install_log_record_factory()
    framework_app = _framework_app_of(app)
    register_error_hooks(framework_app)
    if is_quart_app(framework_app):
        register_quart_route_hook(framework_app)
    elif is_django_handler(framework_app):
        register_django_route_hook(framework_app)
    if handle is not None and known_methods is None:
        known_methods = handle.known_methods
    if mcp_endpoints is None:
        from asgi_observe.mcp.discover import find_mcp_paths

        mcp_endpoints = frozenset(find_mcp_paths(framework_app))

    layered: ASGIApp = app
    # MetricsMiddleware and McpMiddleware record where the same choice says.
    prometheus, backend = False, "prometheus"
    if metrics:
        prometheus, otel = resolve_backend(metrics_backend, exposition=metrics_path is not None)
        backend = "both" if prometheus and otel else "otel" if otel else "prometheus"
    if mcp_endpoints:
        # Innermost, so every outer layer finds the MCP facts of a message in the record
        # before that message reaches it.
        from asgi_observe.mcp.middleware import McpMiddleware

        layered = McpMiddleware(
            layered,
            paths=mcp_endpoints,
            registry=registry,
            namespace=namespace,
            names=mcp_names,
            spans=mcp_spans,
            tracer_provider=tracer_provider,
            sentry_tool_errors=mcp_sentry_tool_errors,
            backend=backend,
        )
    if viewer_path is not None:
        from asgi_observe.viewer import Viewer

        viewer = viewer or Viewer()
        if not isinstance(viewer, Viewer):
            raise TypeError("viewer must be an asgi_observe.viewer.Viewer")
        layered = viewer.middleware(layered, route_resolver=route_resolver)
    if _sentry_wanted(sentry):
        from asgi_observe.errors.sentry import SentryMiddleware

        layered = SentryMiddleware(layered, route_resolver=route_resolver)
    if metrics:
        layered = MetricsMiddleware(
            layered,
            backend=backend,
            registry=registry,
            namespace=namespace,
            known_methods=known_methods,
            route_resolver=route_resolver,
        )
    layered = TracingMiddleware(
        layered,
        tracer_provider=tracer_provider,
        known_methods=known_methods,
        route_resolver=route_resolver,
        body_parent_paths=_with_slashes(mcp_endpoints),
    )
    layered = RequestIdMiddleware(
        layered,
        header_name=request_id_header,
        access_log=access_log,
        error_response=True,
        route_resolver=route_resolver,
    )

    if handle is not None:
        bypass_paths.update(handle.excluded_paths)
        bypass_prefixes.extend(handle.excluded_prefixes)
    if health is None and health_path is not None:
        from asgi_observe.setup.health import health_app

        health = health_app()

    def with_id(endpoint: ASGIApp) -> ASGIApp:
        # The in-band endpoints skip tracing and metrics, but answer with an id too, so
        # a failing probe or scrape can be found in the logs like any request.
        return RequestIdMiddleware(endpoint, header_name=request_id_header)

    mounts: dict[str, ASGIApp] = {}
    if health_path and health is not None:
        mounts[health_path] = with_id(health)
    if viewer_path is not None and viewer is not None:
        # Metrics layers exist by now, so the viewer finds their Prometheus histogram.
        viewer.connect(
            tracer_provider=tracer_provider,
            registry=registry,
            namespace=namespace,
            metrics=metrics and prometheus,
        )
        mounts[viewer_path] = viewer.asgi_app
    layered = PathDispatcher(
        layered,
        bare=app,
        endpoints={metrics_path: with_id(metrics_app(registry))} if metrics_path else None,
        mounts=mounts or None,
        bypass_paths=bypass_paths,
        bypass_prefixes=bypass_prefixes,
    )
    return LifespanMiddleware(
        layered, handle=handle, health=_startup_listener(health), tracer_provider=tracer_provider
    )


def _with_slashes(paths: frozenset[str]) -> frozenset[str]:
    # McpMiddleware serves "/mcp" and "/mcp/" alike; so must the span's parent lookup.
    return frozenset(
        variant
        for path in paths
        for variant in (path, path.rstrip("/") or "/", path.rstrip("/") + "/")
    )


def _framework_app_of(app: Any) -> Any:
    # `app.asgi_app = observe(app.asgi_app)` hands us a bound method of the Quart app.
    owner = getattr(app, "__self__", None)
    return owner if is_quart_app(owner) else app


def _sentry_wanted(sentry: bool | None) -> bool:
    if sentry is not None:
        return sentry
    try:
        from asgi_observe.errors.sentry import sentry_active
    except ImportError:  # sentry-sdk is an optional extra
        return False
    return sentry_active()


def _startup_listener(health: Any) -> Any:
    return health if callable(getattr(health, "mark_started", None)) else None
