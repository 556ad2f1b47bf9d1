"""RequestIdMiddleware: one id per request, taken from the client or generated, echoed back."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable

from asgi_observe._core.logsafe import log_safely
from asgi_observe._core.record import RequestRecord, RouteResolver, ensure_record, observe_message
from asgi_observe._core.span_ids import span_ids
from asgi_observe._core.types import ASGIApp, Message, Receive, Scope, Send
from asgi_observe.frameworks.routes import resolve_route
from asgi_observe.logs.correlation import ACCESS_LOGGER_NAME, log_access, request_id_var
from asgi_observe.logs.current import current_request
from asgi_observe.logs.exception_ids import RequestIds, tag_exception

__all__ = [
    "MAX_REQUEST_ID_LENGTH",
    "RequestIdMiddleware",
    "generate_request_id",
    "get_request_id",
    "is_valid_request_id",
]

MAX_REQUEST_ID_LENGTH = 128
# Visible ASCII (RFC 5234 VCHAR): what nginx $request_id, load-balancer ids, ULIDs and
# UUIDs in any spelling are made of, and nothing that can split or smuggle a header.
_VISIBLE_ASCII = re.compile(rf"[\x21-\x7e]{{1,{MAX_REQUEST_ID_LENGTH}}}")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 section 5.6.2 token
_HEADER_MESSAGES = frozenset(
    {"http.response.start", "websocket.accept", "websocket.http.response.start"}
)
_ERROR_BODY = b"Internal Server Error"
# `connection: close`, as uvicorn's and hypercorn's own 500s say: the app's exception is
# re-raised after this response, and the server then closes the connection, so a
# keep-alive client must not send its next request on it (issue 13).
_ERROR_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(_ERROR_BODY)).encode("ascii")),
    (b"connection", b"close"),
]

_logger = logging.getLogger("asgi_observe.request_id")


def get_request_id() -> str | None:
    """The id of the request being handled, or None outside a request. Since 0.1.0."""
    return request_id_var.get()


def is_valid_request_id(value: str) -> bool:
    """The default validator: 1-128 visible ASCII characters (0x21-0x7E). Since 0.1.0."""
    return _VISIBLE_ASCII.fullmatch(value) is not None


def generate_request_id() -> str:
    """The default generator: 128 random bits as 32 lowercase hex digits. Since 0.1.0."""
    return os.urandom(16).hex()


def _header_safe(value: object) -> bool:
    # Whatever a custom validator or generator says, only printable ASCII reaches a header.
    return isinstance(value, str) and value != "" and value.isascii() and value.isprintable()


def _with_header(message: Message, name: bytes, value: bytes) -> Message:
    # A copy, so the app's own message and header list stay untouched.
    headers = [pair for pair in message.get("headers", ()) if pair[0].lower() != name]
    headers.append((name, value))
    return {**message, "headers": headers}


class RequestIdMiddleware:
    """Give every HTTP request and websocket one id, and echo it on the response.

    The id is read from the request header when the validator accepts it, else generated.
    It is available from `get_request_id()` while the app runs, stored in the shared
    request record, and set on ``http.response.start``, ``websocket.accept`` and
    ``websocket.http.response.start``, replacing a header of the same name.

    Args:
        app: the ASGI application to wrap.
        header_name: the request and response header carrying the id.
        validator: accepts or rejects an incoming id (a str decoded as latin-1); rejected
            ids are replaced and never echoed. Ids with control or non-ASCII characters
            are rejected whatever it says.
        generator: makes a new id; its result must be printable ASCII.
        access_log: True, or a logger, to write one INFO record per finished request
            (logger ``asgi_observe.access`` when True).
        error_response: when the app raises before starting an HTTP response, send a
            plain 500 carrying the id, then re-raise. `observe()` turns it on.
        route_resolver: returns the route template for the access log from the scope.

    Since 0.1.0.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header_name: str = "X-Request-ID",
        validator: Callable[[str], bool] = is_valid_request_id,
        generator: Callable[[], str] = generate_request_id,
        access_log: bool | logging.Logger = False,
        error_response: bool = False,
        route_resolver: RouteResolver | None = None,
    ) -> None:
        if not isinstance(header_name, str) or not _HEADER_NAME.fullmatch(header_name):
            raise ValueError(f"header_name must be an HTTP header name, got {header_name!r}")
        if not callable(validator):
            raise TypeError(f"validator must be callable, got {validator!r}")
        if not callable(generator):
            raise TypeError(f"generator must be callable, got {generator!r}")
        if isinstance(access_log, logging.Logger):
            self._access_logger: logging.Logger | None = access_log
        elif isinstance(access_log, bool):
            self._access_logger = logging.getLogger(ACCESS_LOGGER_NAME) if access_log else None
        else:
            raise TypeError(f"access_log must be a bool or a logging.Logger, got {access_log!r}")
        if not isinstance(error_response, bool):
            raise TypeError(f"error_response must be a bool, got {error_response!r}")
        if route_resolver is not None and not callable(route_resolver):
            raise TypeError(f"route_resolver must be callable, got {route_resolver!r}")
        self.app = app
        self._header = header_name.lower().encode("ascii")
        self._validator = validator
        # The default rule needs no guard and implies header safety: call the regex directly.
        self._accepts: Callable[[str], object] = (
            _VISIBLE_ASCII.fullmatch if validator is is_valid_request_id else self._accepts_custom
        )
        self._generator = generator
        self._error_response = error_response
        self._resolve_route = route_resolver or resolve_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return
        scope, record = ensure_record(scope)
        request_id = record.request_id
        if request_id is None:  # else an outer RequestIdMiddleware already chose it
            request_id = record.request_id = self._choose_id(scope)
        header, id_bytes = self._header, request_id.encode("latin-1")
        access_logger = self._access_logger
        logged = False
        completed = False

        async def send_wrapper(message: Message) -> None:
            nonlocal logged, completed
            if message["type"] in _HEADER_MESSAGES:
                message = _with_header(message, header, id_bytes)
            final = observe_message(record, message)
            await send(message)
            if final:
                completed = True
                if access_logger is not None and not logged:
                    logged = True
                    self._log_access(access_logger, scope, record)

        token = request_id_var.set(request_id)
        request_token = current_request.set((scope, self._resolve_route))
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            # The server logs it once our context is gone: the ids travel on it.
            self._tag(exc, scope, record)
            if self._error_response and scope_type == "http":
                if not record.response_started:
                    # Like Starlette's ServerErrorMiddleware: answer, then let the server
                    # see it (and close the connection, as this 500 announces).
                    with contextlib.suppress(Exception):
                        await send_wrapper(
                            {
                                "type": "http.response.start",
                                "status": 500,
                                "headers": _ERROR_HEADERS,
                            }
                        )
                        await send_wrapper({"type": "http.response.body", "body": _ERROR_BODY})
                elif completed:
                    # The app (Starlette's ServerErrorMiddleware, say) answered in full, then
                    # raised. Re-raised, the server would close a connection whose client
                    # may already be sending its next request on it (issue 13): log it as
                    # the server would, and keep the connection.
                    log_safely(
                        _logger, logging.ERROR,
                        "Exception in ASGI application after its response was complete",
                        exc_info=True,
                    )  # fmt: skip
                    return
            raise
        finally:
            if access_logger is not None and not logged:
                self._log_access(access_logger, scope, record)
            current_request.reset(request_token)
            request_id_var.reset(token)

    def _choose_id(self, scope: Scope) -> str:
        name = self._header
        for key, value in scope.get("headers", ()):
            # Servers lower-case header names, but the ASGI spec does not require it.
            if key == name or (not key.islower() and key.lower() == name):
                candidate: str = value.decode("latin-1")
                if self._accepts(candidate):
                    return candidate
                break
        if self._generator is generate_request_id:
            return generate_request_id()
        return self._generate_custom()

    def _accepts_custom(self, candidate: str) -> bool:
        try:
            return bool(self._validator(candidate)) and _header_safe(candidate)
        except Exception:  # a failing validator rejects; the value is not logged
            return False

    def _generate_custom(self) -> str:
        try:
            request_id = self._generator()
            if _header_safe(request_id):
                return request_id
            log_safely(
                _logger, logging.WARNING,
                "request id generator returned an unusable id; using a random one",
            )  # fmt: skip
        except Exception:
            log_safely(
                _logger, logging.WARNING, "request id generator failed; using a random id",
                exc_info=True,
            )  # fmt: skip
        return generate_request_id()

    def _tag(self, exc: Exception, scope: Scope, record: RequestRecord) -> None:
        try:
            span = record.span
            trace_id, span_id = span_ids(span)
            sampled = span is not None and span.get_span_context().trace_flags.sampled
            route = record.resolve_route(scope, self._resolve_route)
            tag_exception(exc, RequestIds(record.request_id, trace_id, span_id, sampled, route))
        except Exception:  # the app's exception is what propagates, never one of ours
            pass

    def _log_access(self, logger: logging.Logger, scope: Scope, record: RequestRecord) -> None:
        status = record.status
        if status is None and scope["type"] == "http":
            status = 500  # the app raised or returned without a response: servers send 500
        route = record.resolve_route(scope, self._resolve_route)
        method = scope.get("method", "WEBSOCKET")
        log_access(logger, record, method, route, _target(scope), status)


def _target(scope: Scope) -> str:
    # The path as the client sent it (percent-encoded, as uvicorn logs it), not the
    # decoded `path`, where %0d%0a has become a line break.
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.decode("latin-1")
    return str(scope.get("path", ""))
