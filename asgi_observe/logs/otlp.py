"""OTLPLogHandler: stdlib log records (and structlog events that reach stdlib) as OTLP records.

The SDK's own ``LoggingHandler`` is deprecated, and it would miss what matters here: the
ids of the request a record belongs to (also on the server's error line, written after the
request's context is gone), the request id and route as attributes, exceptions scrubbed like
Sentry events, and records the exporter itself writes never exported again.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from asgi_observe.logs.current import current_route
from asgi_observe.logs.exception_ids import exception_ids
from asgi_observe.scrub.scrubber import DEFAULT_SCRUBBER, Scrubber

__all__ = ["OTLPLogHandler", "exporting", "severity_number"]

# Records of these loggers describe the export itself: exporting them again would turn
# one failure into a record per failure per batch (docs/logs.md, "Never a loop").
OWN_LOGGER_PREFIXES = ("opentelemetry", "asgi_observe.export")
# Threads that only export: the SDK's batch and metric reader workers, our bounded flush.
# What they log (urllib3's retries, gRPC's errors) is about exporting spans or metrics.
EXPORT_THREAD_PREFIXES = ("OtelBatch", "OtelPeriodicExportingMetricReader", "asgi-observe-flush")
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))).union(
    ("message", "asctime", "taskName", "color_message", "request_id", "trace_id", "span_id")
)
# OpenTelemetry logs data model, appendix B: the Python levels at the start of each range.
_SEVERITY_STEPS = (
    (logging.CRITICAL, SeverityNumber.FATAL),
    (logging.ERROR, SeverityNumber.ERROR),
    (logging.WARNING, SeverityNumber.WARN),
    (logging.INFO, SeverityNumber.INFO),
    (logging.DEBUG, SeverityNumber.DEBUG),
)
_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}

_exporting = threading.local()


@contextmanager
def exporting() -> Iterator[None]:
    """Mark the current thread as exporting: records it writes meanwhile are not exported."""
    previous = getattr(_exporting, "active", False)
    _exporting.active = True
    try:
        yield
    finally:
        _exporting.active = previous


def severity_number(levelno: int) -> SeverityNumber:
    """The OTLP severity of a stdlib level; levels between two names step up within a range."""
    for start, base in _SEVERITY_STEPS:
        if levelno >= start:
            return SeverityNumber(min(base.value + (levelno - start), base.value + 3))
    return SeverityNumber.TRACE if levelno > 0 else SeverityNumber.UNSPECIFIED


class OTLPLogHandler(logging.Handler):
    """Hand each record to an OpenTelemetry logger provider as an OTLP log record.

    Trace id, span id and flags go in the record's own fields: those of the current span,
    or, for a record about an exception that escaped a request (the server's
    ``Exception in ASGI application`` line), those of that request. ``request_id``, the
    route (``http.route``, once the framework has routed the request) and every
    ``extra=`` field become attributes; an exception
    becomes ``exception.type`` / ``exception.message`` / ``exception.stacktrace``. The
    body, the attributes and the exception are scrubbed like Sentry events. Records of
    the exporters and of the SDK are never exported, nor is anything logged while
    exporting or in an exporting thread. Attached to several loggers, it exports a
    record once.

    Args:
        logger_provider: an OpenTelemetry SDK ``LoggerProvider``.
        level: the least level exported.
        scrubber: what redacts secrets; the default `Scrubber` when None.

    Since 0.2.0.
    """

    def __init__(
        self,
        logger_provider: Any,
        level: int = logging.NOTSET,
        *,
        scrubber: Scrubber | None = None,
    ) -> None:
        super().__init__(level)
        if not callable(getattr(logger_provider, "get_logger", None)):
            raise TypeError("logger_provider must be an OpenTelemetry LoggerProvider")
        self._provider = logger_provider
        self._scrubber = DEFAULT_SCRUBBER if scrubber is None else scrubber
        self._loggers: dict[str, Any] = {}
        self._last = threading.local()  # the record this thread handed over last

    def handle(self, record: logging.LogRecord) -> bool:
        if (
            getattr(_exporting, "active", False)
            or record.name.startswith(OWN_LOGGER_PREFIXES)
            or threading.current_thread().name.startswith(EXPORT_THREAD_PREFIXES)
        ):
            return False
        last = getattr(self._last, "record", None)
        if last is not None and last() is record:  # reached again through a parent logger
            return False
        self._last.record = weakref.ref(record)
        return super().handle(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = self._translate(record)
            logger = self._loggers.get(record.name)
            if logger is None:
                logger = self._loggers[record.name] = self._provider.get_logger(record.name)
            logger.emit(**fields)
        except Exception:
            self.handleError(record)

    def _translate(self, record: logging.LogRecord) -> dict[str, Any]:
        attributes = _attributes(record)
        tagged = exception_ids(record.exc_info) if record.exc_info else None
        request_id = record.__dict__.get("request_id")
        if request_id is None and tagged is not None:
            request_id = tagged.request_id
        if request_id is not None:
            attributes["request_id"] = str(request_id)
        route = record.__dict__.get("route")
        if route is None and tagged is not None:
            route = tagged.route
        if route is None:
            route = current_route()
        if route is not None:
            attributes.setdefault("http.route", str(route))
        if record.exc_info and record.exc_info[0] is not None:
            attributes.update(_exception_attributes(record.exc_info))
        body = _body(record)
        scrubbed = self._scrubber.scrub_event({"body": body, "attributes": attributes})
        return {
            "timestamp": int(record.created * 1e9),
            "observed_timestamp": time.time_ns(),
            "context": _context(record, tagged),
            "severity_number": severity_number(record.levelno),
            "severity_text": _SEVERITY_TEXT.get(record.levelname, record.levelname),
            "body": scrubbed.get("body", body),
            "attributes": scrubbed.get("attributes", {}),
        }


def _body(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # bad %-args: keep what was given rather than lose the record
        return f"{record.msg!s} % {record.args!s}"


def _attributes(record: logging.LogRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "code.file.path": record.pathname,
        "code.function.name": record.funcName,
        "code.line.number": record.lineno,
    }
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
            attributes[key] = _attribute_value(value)
    return attributes


def _attribute_value(value: Any) -> Any:
    # OTLP attribute values: str, bool, int, float, or a homogeneous sequence of them.
    if value is None or isinstance(value, (str, bool, int, float)):
        return "" if value is None else value
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        items = [_attribute_value(item) for item in value]
        if len({type(item) for item in items}) <= 1:
            return items
        return [str(item) for item in items]
    if isinstance(value, Mapping):
        return {str(key): _attribute_value(item) for key, item in value.items()}
    try:
        return str(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def _exception_attributes(exc_info: Any) -> dict[str, str]:
    exc_type, exc, tb = exc_info
    module, qualname = exc_type.__module__, exc_type.__qualname__
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {qualname}>"
    try:
        stack = "".join(traceback.format_exception(exc_type, exc, tb))
    except Exception:
        stack = ""
    # https://opentelemetry.io/docs/specs/semconv/exceptions/exceptions-logs/
    return {
        "exception.type": qualname if module == "builtins" else f"{module}.{qualname}",
        "exception.message": message,
        "exception.stacktrace": stack,
    }


def _context(record: logging.LogRecord, tagged: Any) -> Context | None:
    # The current span when the record was made in the request's own context;
    # else the ids the record carries (from the request an exception escaped).
    trace_id = record.__dict__.get("trace_id")
    span_id = record.__dict__.get("span_id")
    if trace_id is None and tagged is not None:
        trace_id, span_id = tagged.trace_id, tagged.span_id
    # Flags travel only with the exception's ids; a record made elsewhere (a queue
    # handler's thread) carries hex ids alone and is exported as not sampled.
    sampled = tagged is not None and tagged.trace_id == trace_id and tagged.sampled
    current = trace.get_current_span().get_span_context()
    if current.is_valid and (trace_id is None or format(current.trace_id, "032x") == trace_id):
        return trace.set_span_in_context(NonRecordingSpan(current))
    if not trace_id or not span_id:
        return None
    try:
        context = SpanContext(
            int(trace_id, 16),
            int(span_id, 16),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
        )
    except (TypeError, ValueError):
        return None
    return trace.set_span_in_context(NonRecordingSpan(context)) if context.is_valid else None
