"""One clear warning when exporting fails, instead of one per retry and per batch.

The OTLP exporters log a warning for every retry and an error for every failed batch;
with a collector down that is a line every few seconds for as long as it stays down.
A filter on their loggers turns the first such record in each interval into a single
warning on `asgi_observe.export` and counts the rest.
"""

from __future__ import annotations

import logging
import threading
import time

EXPORT_LOGGER_NAME = "asgi_observe.export"
# The loggers the OTLP exporters and the SDK's export loops write failures to.
EXPORTER_LOGGER_NAMES = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.metrics._internal.export",
    "opentelemetry.sdk._logs._internal.export",
)
DEFAULT_INTERVAL_S = 300.0

_logger = logging.getLogger(EXPORT_LOGGER_NAME)


class ExportFailureFilter(logging.Filter):
    """Collapse exporter warnings and errors into one warning per interval."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        super().__init__("asgi_observe.export-failures")
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._next_report = 0.0
        self._suppressed = 0
        self._reports = 0
        self._collapsed = 0

    @property
    def reports(self) -> int:
        """How many warnings this filter has logged."""
        return self._reports

    @property
    def collapsed(self) -> int:
        """How many exporter records it has dropped (reported ones included)."""
        return self._collapsed

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = time.monotonic()
        with self._lock:
            self._collapsed += 1
            if now < self._next_report:
                self._suppressed += 1
                return False
            self._next_report = now + self.interval_s
            suppressed, self._suppressed = self._suppressed, 0
            self._reports += 1
        try:
            detail = record.getMessage()
        except Exception:  # a bad format string must not hide the failure itself
            detail = str(record.msg)
        _logger.warning(
            "Exporting telemetry failed: %s. Requests are not affected; telemetry is "
            "dropped while the exporter cannot reach its endpoint. Further export errors "
            "are suppressed for %.0f s%s.",
            detail,
            self.interval_s,
            f" ({suppressed} suppressed since the last report)" if suppressed else "",
        )
        return False


_installed: ExportFailureFilter | None = None
_install_lock = threading.Lock()


def install_export_failure_filter(interval_s: float = DEFAULT_INTERVAL_S) -> ExportFailureFilter:
    """Attach the filter to the exporter loggers once; later calls return the same one."""
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = ExportFailureFilter(interval_s)
            for name in EXPORTER_LOGGER_NAMES:
                logging.getLogger(name).addFilter(_installed)
        return _installed


def uninstall_export_failure_filter() -> None:
    """Detach the filter (tests)."""
    global _installed
    with _install_lock:
        if _installed is not None:
            for name in EXPORTER_LOGGER_NAMES:
                logging.getLogger(name).removeFilter(_installed)
            _installed = None
