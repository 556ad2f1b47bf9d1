"""Log correlation: the request id and trace ids of the current request on log records."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, MutableMapping
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

from opentelemetry.trace import get_current_span

from asgi_observe._core.logsafe import printable
from asgi_observe._core.mcp_facts import current_mcp
from asgi_observe._core.record import RequestRecord
from asgi_observe._core.span_ids import span_ids
from asgi_observe.logs.current import current_span
from asgi_observe.logs.exception_ids import exception_ids

__all__ = [
    "ACCESS_LOGGER_NAME",
    "JsonFormatter",
    "RequestContextFilter",
    "add_request_context",
    "install_log_record_factory",
    "uninstall_log_record_factory",
]

ACCESS_LOGGER_NAME = "asgi_observe.access"

# Set by RequestIdMiddleware for the duration of a request; it lives here so that this
# module needs nothing from the middleware (request_id.py imports correlation.py, not back).
request_id_var: ContextVar[str | None] = ContextVar("asgi_observe.request_id", default=None)

_Ids = tuple[str | None, str | None, str | None]
_NO_IDS: _Ids = (None, None, None)
# uvicorn adds `color_message` (the message with ANSI colours) to its records: not an extra.
_STANDARD_ATTRIBUTES = (
    frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)))
    .union(("message", "asctime", "taskName", "request_id", "trace_id", "span_id", "color_message"))
    .union(("mcp_method_name", "mcp_tool_name", "jsonrpc_request_id", "mcp_session_id"))
)

# On MCP endpoints (issue 15): the JSON-RPC method, the tool (or prompt) name, the
# JSON-RPC id and the session digest; None elsewhere.
MCP_FIELDS = ("mcp_method_name", "mcp_tool_name", "jsonrpc_request_id", "mcp_session_id")
_NO_MCP = (None, None, None, None)


def _mcp_fields() -> tuple[str | None, str | None, str | None, str | None]:
    facts = current_mcp.get()
    return _NO_MCP if facts is None else facts.log_fields()


def _set_mcp_fields(record: logging.LogRecord) -> None:
    (
        record.mcp_method_name,
        record.mcp_tool_name,
        record.jsonrpc_request_id,
        record.mcp_session_id,
    ) = _mcp_fields()


def _current_ids() -> _Ids:
    request_id = request_id_var.get()
    if request_id is None:
        return _NO_IDS
    try:
        trace_id, span_id = span_ids(get_current_span())
        if trace_id is None:  # logged by a layer outside the tracing layer
            trace_id, span_id = span_ids(current_span())
    except Exception:  # a broken tracing setup must not break logging
        return request_id, None, None
    return request_id, trace_id, span_id


def _escaped_ids(record: logging.LogRecord) -> _Ids:
    # Outside a request, a record about an exception that escaped one (the server's
    # "Exception in ASGI application") carries that request's ids.
    if not record.exc_info:
        return _NO_IDS
    ids = exception_ids(record.exc_info)
    return _NO_IDS if ids is None else (ids.request_id, ids.trace_id, ids.span_id)


def _record_ids(record: logging.LogRecord) -> _Ids:
    # Records made by our factory (or passed through our filter) already carry the ids
    # of the thread that logged; a handler running elsewhere must not overwrite them.
    attributes = record.__dict__
    if "request_id" in attributes:
        return attributes["request_id"], attributes.get("trace_id"), attributes.get("span_id")
    ids = _current_ids()
    return _escaped_ids(record) if ids[0] is None else ids


_installed: Callable[..., logging.LogRecord] | None = None
_previous: Callable[..., logging.LogRecord] | None = None


def install_log_record_factory() -> None:
    """Give every `LogRecord` ``request_id``, ``trace_id`` and ``span_id`` attributes.

    Chains the record factory in place; calling it again does nothing. Outside a request
    the three attributes are None. Since 0.1.0.
    """
    global _installed, _previous
    if _installed is not None:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        try:
            record = previous(*args, **kwargs)
        except Exception:  # a broken factory further down must not lose the log line
            record = logging.LogRecord(*args, **kwargs)
        try:
            request_id = request_id_var.get()
            if request_id is None:
                record.request_id, record.trace_id, record.span_id = _escaped_ids(record)
            else:
                record.request_id, record.trace_id, record.span_id = _current_ids()
            _set_mcp_fields(record)
        except Exception:  # e.g. a record type that refuses new attributes
            pass
        return record

    _installed, _previous = factory, previous
    logging.setLogRecordFactory(factory)


def uninstall_log_record_factory() -> None:
    """Undo `install_log_record_factory` (for tests).

    If another factory was chained on top of ours since, ours stays in the chain so that
    theirs keeps working. Since 0.1.0.
    """
    global _installed, _previous
    if _previous is not None and logging.getLogRecordFactory() is _installed:
        logging.setLogRecordFactory(_previous)
    _installed = _previous = None


class RequestContextFilter(logging.Filter):
    """A filter that adds ``request_id``, ``trace_id`` and ``span_id`` to records.

    For logging set up by hand without `observe()`'s record factory. It never drops a
    record and keeps ids a record already carries. Since 0.1.0.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if "request_id" not in record.__dict__:
            ids = _current_ids()
            record.request_id, record.trace_id, record.span_id = (
                _escaped_ids(record) if ids[0] is None else ids
            )
        if "mcp_method_name" not in record.__dict__:
            _set_mcp_fields(record)
        return True


def add_request_context(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor adding ``request_id``, ``trace_id`` and ``span_id``.

    Values already bound in the event win. Since 0.1.0.
    """
    request_id, trace_id, span_id = _current_ids()
    event_dict.setdefault("request_id", request_id)
    event_dict.setdefault("trace_id", trace_id)
    event_dict.setdefault("span_id", span_id)
    facts = current_mcp.get()
    if facts is not None:
        for key, value in zip(MCP_FIELDS, facts.log_fields(), strict=True):
            if value is not None:
                event_dict.setdefault(key, value)
    return event_dict


def _safe_str(value: object) -> str:
    try:
        return value.isoformat() if isinstance(value, datetime) else str(value)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return f"<unrepresentable {type(value).__name__}>"


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object on one line.

    Keys: ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
    ``request_id``, ``trace_id``, ``span_id``, ``exception`` and ``stack`` when present,
    then every field passed with ``extra=`` (values JSON cannot hold are written as
    text). Formatting never raises. Since 0.1.0.
    """

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # bad %-args: keep what was given rather than lose the line
            message = f"{_safe_str(record.msg)} % {_safe_str(record.args)}"
        request_id, trace_id, span_id = _record_ids(record)
        created = datetime.fromtimestamp(record.created, tz=timezone.utc)
        entry: dict[str, Any] = {
            "timestamp": created.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            "request_id": request_id,
            "trace_id": trace_id,
            "span_id": span_id,
        }
        attributes = record.__dict__
        mcp_fields = (
            [attributes.get(key) for key in MCP_FIELDS]
            if "mcp_method_name" in attributes
            else _mcp_fields()
        )
        entry.update(
            (key, value) for key, value in zip(MCP_FIELDS, mcp_fields, strict=True) if value
        )
        try:
            if record.exc_info:
                entry["exception"] = self.formatException(record.exc_info)
            elif record.exc_text:
                entry["exception"] = record.exc_text
            if record.stack_info:
                entry["stack"] = self.formatStack(record.stack_info)
        except Exception:
            entry["exception"] = "<unformattable exception>"
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and key not in entry:
                entry[key] = value
        try:
            return json.dumps(entry, default=_safe_str)
        except Exception:  # circular values or non-string keys in an extra
            return json.dumps({key: _safe_str(value) for key, value in entry.items()})


def log_access(
    logger: logging.Logger,
    record: RequestRecord,
    method: str,
    route: str | None,
    path: str,
    status: int | None,
) -> None:
    """Write the access log line of one finished request (called by RequestIdMiddleware).

    The method, route and path come from the client: control characters in them are
    escaped, so ``%0d%0a`` or ``%1b`` in a URL cannot forge a line or a terminal escape.
    """
    try:
        if not logger.isEnabledFor(logging.INFO):
            return
        method, path = printable(method), printable(path)
        route = None if route is None else printable(route)
        duration_ms = round(record.duration_s * 1000.0, 3)
        fields = {"method": method, "route": route, "status": status, "duration_ms": duration_ms}
        log_record = logger.makeRecord(
            logger.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %s %.2fms",
            (method, route or path, "-" if status is None else status, duration_ms),
            None,
            extra=fields,
        )
        # The server span's ids, not whatever span the app left current.
        trace_id, span_id = span_ids(record.span) if record.span is not None else (None, None)
        if trace_id is None:
            _, trace_id, span_id = _current_ids()
        log_record.request_id = record.request_id
        log_record.trace_id = trace_id
        log_record.span_id = span_id
        logger.handle(log_record)
    except Exception:  # the access log must never break the response
        pass
