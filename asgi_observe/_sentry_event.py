"""What SentryMiddleware adds to an event, built only when an event is actually sent.

No sentry-sdk import here: these helpers work on the plain dicts sentry-sdk passes to
event processors and ``before_send``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from ._request import RequestRecord
from ._scrub_values import MAX_BODY_BYTES
from ._types import Scope
from .scrub import Scrubber

SCRUBBER_HINT_KEY = "asgi_observe.scrubber"
"""Hint key under which the request's event processor leaves the `Scrubber` to run last."""

_STATUS_ATTRIBUTES = ("status_code", "code", "status")
_HOOKS = ("before_send", "before_send_transaction")


class RequestFacts:
    """What one request showed that an event may need: kept cheap until an event exists."""

    __slots__ = ("_body", "_body_size", "_secrets", "record", "reported", "scope")

    def __init__(self, scope: Scope, record: RequestRecord) -> None:
        self.scope = scope
        self.record = record
        self.reported = False
        self._body: list[bytes] | None = None
        self._body_size = 0
        self._secrets: frozenset[str] | None = None

    def keep_body(self, chunk: Any) -> None:
        """Keep a reference to a received body chunk, up to `MAX_BODY_BYTES`."""
        if chunk and self._body_size < MAX_BODY_BYTES:
            if self._body is None:
                self._body = []
            self._body.append(chunk)
            self._body_size += len(chunk)

    def secrets(self, scrubber: Scrubber) -> frozenset[str]:
        """The secret values of this request's headers, cookies, query and body."""
        if self._secrets is None:
            scope = self.scope
            body = b"".join(self._body)[:MAX_BODY_BYTES] if self._body else b""
            self._secrets = scrubber.request_secrets(
                scope.get("headers") or (), scope.get("query_string") or b"", body
            )
        return self._secrets


def http_status(exc: BaseException) -> int | None:
    """The status of an HTTP exception (Starlette, Litestar, werkzeug/Quart, aiohttp).

    Duck-typed on ``status_code``, ``code`` or ``status``, but only for classes named
    ``...HTTPException``: errors of HTTP *clients* (``urllib.error.HTTPError.code``,
    aiohttp's ``ClientResponseError.status``) carry an upstream status and are real faults.
    """
    if not any(cls.__name__.endswith("HTTPException") for cls in type(exc).__mro__):
        return None
    for attribute in _STATUS_ATTRIBUTES:
        try:
            value = getattr(exc, attribute, None)
        except Exception:
            continue
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return int(value)
    return None


def is_automatic(event: Any) -> bool:
    """True when an integration captured the exception (not ``capture_exception()``)."""
    try:
        mechanism = event["exception"]["values"][-1].get("mechanism") or {}
        return bool(mechanism.get("type", "generic") != "generic")
    except (KeyError, IndexError, TypeError, AttributeError):
        return False


def request_data(scope: Scope, scrubber: Scrubber) -> dict[str, Any]:
    """Sentry's ``request`` interface from the ASGI scope, already scrubbed."""
    headers: dict[str, str] = {}
    host = None
    for raw_name, raw_value in scope.get("headers") or ():
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if name == "host":
            host = value
        if scrubber.is_sensitive(name):
            value = scrubber.replacement
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if host is None:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server and server[1] else server[0] if server else ""
    scheme = scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http")
    data: dict[str, Any] = {"url": f"{scheme}://{host}{scope.get('path', '')}", "headers": headers}
    method = scope.get("method")
    if method:
        data["method"] = method
    query = scope.get("query_string")
    if query:
        data["query_string"] = scrubber.redact_query(query)
    return data


def set_trace_context(event: dict[str, Any], span: trace.Span | None) -> None:
    """Point the event's trace context at the OpenTelemetry span of the request."""
    if span is None:
        span = trace.get_current_span()
    context = span.get_span_context()
    if not context.is_valid:
        return
    trace_id, span_id = format(context.trace_id, "032x"), format(context.span_id, "016x")
    contexts = event.get("contexts")
    if not isinstance(contexts, dict):
        contexts = event["contexts"] = {}
    current = contexts.get("trace")
    trace_context: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    trace_context["trace_id"] = trace_id
    trace_context["span_id"] = span_id
    parent = getattr(span, "parent", None)
    if isinstance(parent, trace.SpanContext) and parent.is_valid:
        trace_context["parent_span_id"] = format(parent.span_id, "016x")
    else:
        trace_context.pop("parent_span_id", None)
    sampling = trace_context.get("dynamic_sampling_context")
    if isinstance(sampling, dict):  # sent as the envelope's trace header: keep it consistent
        trace_context["dynamic_sampling_context"] = {**sampling, "trace_id": trace_id}
    contexts["trace"] = trace_context


class ScrubLast:
    """A ``before_send`` that runs the user's hook, then scrubs the events of our requests.

    Events that no SentryMiddleware request saw (no scrubber in the hint) pass unchanged.
    """

    __slots__ = ("hook",)

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def __call__(self, event: Any, hint: Any) -> Any:
        if self.hook is not None:
            event = self.hook(event, hint)
            if event is None:
                return None
        scrubber = hint.get(SCRUBBER_HINT_KEY) if isinstance(hint, dict) else None
        if isinstance(scrubber, Scrubber):
            return scrubber.scrub_event(event, hint)
        return event


def scrub_last(client: Any) -> None:
    """Wrap the client's ``before_send`` hooks in `ScrubLast`, once per client."""
    options = getattr(client, "options", None)
    if not isinstance(options, dict):
        return
    for key in _HOOKS:
        hook = options.get(key)
        if not isinstance(hook, ScrubLast):
            options[key] = ScrubLast(hook)
