"""metrics_app: a mountable ASGI app serving the Prometheus / OpenMetrics exposition."""

from __future__ import annotations

import gzip
import logging
import os
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from asgi_observe._core.logsafe import log_safely
from asgi_observe._core.types import ASGIApp, Receive, Scope, Send

__all__ = ["metrics_app", "serve_metrics_at"]

_log = logging.getLogger("asgi_observe.metrics")
_ALLOWED = (b"GET", b"HEAD")
_TEXT = (b"content-type", b"text/plain; charset=utf-8")


def metrics_app(registry: Any = None) -> ASGIApp:
    """Return an ASGI app that serves the metrics of `registry` on GET and HEAD.

    Prometheus text by default, OpenMetrics (with exemplars) when the scraper's Accept
    header asks for it, gzip when Accept-Encoding allows it, ``?name[]=...`` to restrict
    the output. Other methods get 405 with an Allow header; a failing collector gets a
    500 with a short message; lifespan events are answered. With no `registry` and
    ``PROMETHEUS_MULTIPROC_DIR`` set, every scrape aggregates all worker processes
    through a fresh ``MultiProcessCollector``, plus each live worker's process_* series
    (labelled ``pid``) and ``python_info``. It ignores the path: use it as a
    Starlette ``Route`` endpoint or ``Mount``, a Litestar ``asgi`` handler, or behind
    `serve_metrics_at`.

    Since 0.1.0.
    """
    return _MetricsApp(registry)


class _MetricsApp:
    # A class, not a closure: Starlette's Route treats plain functions as
    # request -> response endpoints and only instances as raw ASGI apps.
    def __init__(self, registry: Any) -> None:
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "lifespan":
            await _lifespan(receive, send)
        elif scope_type == "http":
            await _serve(self.registry, scope, send)
        elif scope_type == "websocket":
            await send({"type": "websocket.close", "code": 1000})


def serve_metrics_at(app: ASGIApp, path: str = "/metrics", registry: Any = None) -> ASGIApp:
    """Answer HTTP requests for `path` with `metrics_app(registry)`, the rest with `app`.

    Placed outermost, it keeps scrapes out of the metrics and traces of `app`.

    Since 0.1.0.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"path must start with '/', not {path!r}")
    metrics = metrics_app(registry)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            scope["path"] == path or scope["path"] == scope.get("root_path", "") + path
        ):
            await metrics(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _serve(registry: Any, scope: Scope, send: Send) -> None:
    method = scope["method"].encode("latin-1")
    if method not in _ALLOWED:
        headers = [_TEXT, (b"allow", b"GET, HEAD")]
        await _respond(send, 405, headers, b"Method Not Allowed: use GET or HEAD\n")
        return
    accept = accept_encoding = b""
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"accept":
            accept = value
        elif name == b"accept-encoding":
            accept_encoding = value
    try:
        # Blocking but short (milliseconds for thousands of series); a thread would
        # tie the app to asyncio. See docs/metrics.md for very large registries.
        target = _restricted(_registry(registry), scope.get("query_string", b""))
        encoder, content_type = _encoder(accept)
        try:
            output = encoder(target)
        except Exception:
            if not accept:
                raise
            # The format the client asked for failed: the default decides whether it
            # was the client's Accept (served in the default format) or a collector.
            encoder, content_type = choose_encoder("")
            output = encoder(target)
    except Exception as exc:  # a collector fault is the scrape's 500, not a crash
        log_safely(_log, logging.ERROR, "asgi_observe could not collect the metrics", exc_info=True)
        body = f"Error collecting metrics: {type(exc).__name__}\n".encode()
        await _respond(send, 500, [_TEXT], body)
        return
    headers = [(b"content-type", content_type.encode("latin-1"))]
    if gzip_accepted(accept_encoding.decode("latin-1")):
        output = gzip.compress(output)
        headers.append((b"content-encoding", b"gzip"))
    headers.append((b"vary", b"Accept, Accept-Encoding"))
    await _respond(send, 200, headers, b"" if method == b"HEAD" else output, len(output))


def _encoder(accept: bytes) -> tuple[Any, str]:
    # prometheus-client raises on a malformed version (`version=abc`): that is bad client
    # input, answered in the default format, never a collector fault with an ERROR log
    # and a Sentry event per request (issue 13).
    try:
        return choose_encoder(accept.decode("latin-1"))
    except Exception:
        return choose_encoder("")


def _registry(registry: Any) -> Any:
    if registry is not None:
        return registry
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get(
        "prometheus_multiproc_dir"  # noqa: SIM112  (the old spelling prometheus-client reads)
    )
    if directory:
        from prometheus_client import multiprocess

        from asgi_observe.metrics.process import add_worker_collectors

        fresh = CollectorRegistry()
        multiprocess.MultiProcessCollector(fresh)  # type: ignore[no-untyped-call]
        add_worker_collectors(fresh, directory)  # process_* per worker, python_info
        return fresh
    return REGISTRY


def _restricted(registry: Any, query_string: bytes) -> Any:
    names = parse_qs(query_string.decode("latin-1")).get("name[]")
    restrict = getattr(registry, "restricted_registry", None)
    return restrict(names) if names and restrict is not None else registry


async def _respond(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    length: int | None = None,
) -> None:
    length = len(body) if length is None else length
    headers.append((b"content-length", str(length).encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
