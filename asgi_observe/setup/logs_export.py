"""Build the SDK logger provider, its batch processor and exporter, and attach the handler."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from asgi_observe.logs.otlp import OTLPLogHandler, exporting
from asgi_observe.setup.export_log import install_export_failure_filter
from asgi_observe.setup.exporters import _MISSING_OTLP, _importable, _signal_url
from asgi_observe.setup.signals import ROOT, SignalSettings

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.resources import Resource

__all__ = [
    "LogExport",
    "check_log_exporter_package",
    "install_log_export",
    "install_log_export_once",
]

_logger = logging.getLogger("asgi_observe.export")


class LogExport:
    """The log pipeline configure() set up: provider, processors, and the attached handler.

    Since 0.2.0.
    """

    def __init__(
        self,
        provider: Any,
        handler: OTLPLogHandler,
        loggers: Sequence[logging.Logger],
        processors: Sequence[Any],
        *,
        owns_provider: bool,
    ) -> None:
        self.provider = provider
        self.handler = handler
        self.loggers = tuple(loggers)
        self.processors = tuple(processors)
        self.owns_provider = owns_provider

    @property
    def dropped(self) -> int:
        """Log records dropped because the export queue was full."""
        return sum(getattr(processor, "dropped", 0) for processor in self.processors)

    def detach(self) -> None:
        """Take the handler off the loggers it was attached to."""
        for logger in self.loggers:
            logger.removeHandler(self.handler)


def _batch_processor_class() -> type[Any]:
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    class DropCountingBatchProcessor(BatchLogRecordProcessor):
        """The SDK's batch processor, counting the records a full queue drops.

        The SDK never blocks on a full queue: it drops the oldest record and logs a
        warning (collapsed by the export-failure filter). The count is ours.
        """

        def __init__(self, exporter: LogRecordExporter) -> None:
            super().__init__(exporter)
            self.dropped = 0
            self._count_lock = threading.Lock()

        def on_emit(self, log_record: ReadWriteLogRecord) -> None:
            queue = getattr(getattr(self, "_batch_processor", None), "_queue", None)
            maxlen = getattr(queue, "maxlen", None)
            if maxlen is not None and len(queue) >= maxlen:  # type: ignore[arg-type]
                with self._count_lock:
                    self.dropped += 1
            super().on_emit(log_record)

    return DropCountingBatchProcessor


def _guarded(exporter: LogRecordExporter) -> LogRecordExporter:
    from opentelemetry.sdk._logs.export import LogRecordExporter

    class ExportGuard(LogRecordExporter):
        """Marks the exporting thread, so what the exporter logs is never exported again."""

        def export(self, batch: Any) -> Any:
            with exporting():
                return exporter.export(batch)

        def shutdown(self, *args: Any, **kwargs: Any) -> None:
            with exporting():
                exporter.shutdown(*args, **kwargs)  # type: ignore[no-untyped-call]

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            with exporting():
                return bool(exporter.force_flush(timeout_millis))

    return ExportGuard()


def _exporter(kind: str, protocol: str, endpoint: str | None, headers: Any) -> LogRecordExporter:
    if kind == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

        return ConsoleLogRecordExporter()
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
                OTLPLogExporter as GrpcLogExporter,
            )

            return GrpcLogExporter(
                endpoint=endpoint, headers=None if headers is None else dict(headers)
            )
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    except ImportError as exc:
        raise ImportError(_MISSING_OTLP) from exc
    return OTLPLogExporter(endpoint=_signal_url(endpoint, "logs"), headers=headers)


def install_log_export(
    signals: SignalSettings,
    resource: Resource,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
) -> LogExport:
    """Set the global logger provider (unless the app set one) and attach the handler."""
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider

    current: Any = _logs.get_logger_provider()
    owns = not isinstance(current, LoggerProvider)
    processors: list[LogRecordProcessor] = []
    provider: Any = current  # the application's own: records go where it sends them
    if owns:
        provider = LoggerProvider(resource=resource)
        batch_class = _batch_processor_class()
        for kind in signals.logs_exporters:
            exporter = _guarded(_exporter(kind, signals.logs_protocol, endpoint, headers))
            processors.append(batch_class(exporter))
        for processor in processors:
            provider.add_log_record_processor(processor)
        install_export_failure_filter()
        _logs.set_logger_provider(provider)
    handler = OTLPLogHandler(provider, signals.log_level)
    loggers = [logging.getLogger(None if name == ROOT else name) for name in signals.log_loggers]
    for logger in loggers:
        logger.addHandler(handler)
    return LogExport(provider, handler, loggers, processors, owns_provider=owns)


_installed: LogExport | None = None


def install_log_export_once(
    signals: SignalSettings,
    resource: Resource,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
) -> LogExport | None:
    """`install_log_export`, unless its handler is still attached (then None).

    A second configure() must not attach a second handler: records would go out twice.
    """
    global _installed
    if _installed is not None and any(
        _installed.handler in logger.handlers for logger in _installed.loggers
    ):
        return None
    _installed = install_log_export(signals, resource, endpoint, headers)
    return _installed


def uninstall_log_export() -> None:
    """Detach the handler `install_log_export_once` attached, and forget it (tests)."""
    global _installed
    if _installed is not None:
        _installed.detach()
        _installed = None


def check_log_exporter_package(signals: SignalSettings) -> None:
    """Raise ValueError when OTLP log export was chosen but its package is missing."""
    package = "grpc" if signals.logs_protocol == "grpc" else "http"
    if "otlp" in signals.logs_exporters and not _importable(
        f"opentelemetry.exporter.otlp.proto.{package}"
    ):
        raise ValueError(
            f"OTLP export over {signals.logs_protocol} needs opentelemetry-exporter-otlp: "
            "pip install 'asgi-observe[otlp]'"
        )
