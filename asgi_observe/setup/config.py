"""configure(): OpenTelemetry providers, exporters, propagators and Sentry from the environment."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace

from asgi_observe.setup import settings as _settings
from asgi_observe.setup.exporters import (
    check_exporter_packages,
    install_meter_provider,
    install_tracer_provider,
)
from asgi_observe.setup.flush import flush_telemetry
from asgi_observe.setup.instance import with_instance_id
from asgi_observe.setup.sentry_init import check_sentry, init_sentry
from asgi_observe.setup.settings import Settings, read_settings
from asgi_observe.setup.signals import SignalSettings, read_signal_settings, signals_with_arguments

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

    from asgi_observe.setup.logs_export import LogExport

__all__ = ["TelemetryHandle", "configure", "is_configured", "validate_environment"]

_lock = threading.Lock()


class TelemetryHandle:
    """What `configure()` set up, and the way to flush it.

    Attributes:
        excluded_paths / excluded_prefixes: paths from ``OTEL_PYTHON_EXCLUDED_URLS``.
        known_methods: methods from ``OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`` (None:
            the default set).
        traces_exporters / metrics_exporters / logs_exporters: the exporters in use
            (empty: none).
        sentry_enabled: whether a Sentry client is active.
        owns_tracer_provider / owns_meter_provider / owns_logger_provider: whether
            configure() installed them (a provider the application set is flushed but
            never shut down).
        log_export: the log pipeline (its ``dropped`` count), or None.

    Since 0.1.0; the logs attributes since 0.2.0.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        owns_tracer: bool,
        owns_meter: bool,
        sentry: bool,
        signals: SignalSettings | None = None,
        log_export: LogExport | None = None,
    ) -> None:
        self.excluded_paths = settings.excluded_paths
        self.excluded_prefixes = settings.excluded_prefixes
        self.known_methods = settings.known_methods
        self.traces_exporters = settings.traces_exporters
        self.metrics_exporters = settings.metrics_exporters
        self.sentry_enabled = sentry
        self.owns_tracer_provider = owns_tracer
        self.owns_meter_provider = owns_meter
        self.logs_exporters = () if signals is None else signals.logs_exporters
        self.log_export = log_export
        self.owns_logger_provider = log_export is not None and log_export.owns_provider

    def force_flush(self, timeout: float = 5.0) -> bool:
        """Export buffered spans, metrics, log records and Sentry events, within `timeout` s."""
        return flush_telemetry(timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush, take the log handler off its loggers, shut down what configure() installed."""
        self.force_flush(timeout)
        logger_provider = None if self.log_export is None else self.log_export.provider
        if self.log_export is not None:
            self.log_export.detach()
        for owned, provider in (
            (self.owns_tracer_provider, trace.get_tracer_provider()),
            (self.owns_meter_provider, metrics.get_meter_provider()),
            (self.owns_logger_provider, logger_provider),
        ):
            shutdown = getattr(provider, "shutdown", None)
            if owned and shutdown is not None:
                shutdown()


def is_configured() -> bool:
    """Whether a tracer provider has been set globally (by configure() or the app).

    Since 0.1.0.
    """
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def validate_environment(environ: Mapping[str, str] | None = None) -> None:
    """Raise ValueError naming the first malformed OTEL_* / SENTRY_* variable.

    Since 0.1.0.
    """
    env = os.environ if environ is None else environ
    settings = read_settings(env)
    check_sentry(settings.sentry_dsn)
    check_exporter_packages(settings)
    from asgi_observe.setup.logs_export import check_log_exporter_package

    check_log_exporter_package(read_signal_settings(env))


def configure(
    *,
    service_name: str | None = None,
    resource_attributes: Mapping[str, str | bool | int | float] | None = None,
    traces_exporter: str | Sequence[str] | None = None,
    metrics_exporter: str | Sequence[str] | None = None,
    logs_exporter: str | Sequence[str] | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    sampler: Sampler | None = None,
    span_exporter: SpanExporter | None = None,
    install_propagator: bool = True,
    sentry_dsn: str | None = None,
    sentry_environment: str | None = None,
    sentry_release: str | None = None,
    sentry_traces_sample_rate: float | None = None,
) -> TelemetryHandle:
    """Set up OpenTelemetry and Sentry from arguments and the standard variables.

    Arguments win over variables. Providers, propagators or a Sentry client the
    application already set are kept, so calling this again is harmless. Everything
    is validated before anything is installed: a malformed variable raises ValueError
    naming it. Each process gets its own ``service.instance.id`` unless one was given,
    so workers pushing metrics never merge. See docs/configuration.md for every option
    and variable.

    Since 0.1.0; `logs_exporter` since 0.2.0.
    """
    settings = _with_arguments(
        read_settings(os.environ),
        traces_exporter=traces_exporter,
        metrics_exporter=metrics_exporter,
        protocol=protocol,
        endpoint=endpoint,
        sentry_dsn=sentry_dsn,
        sentry_environment=sentry_environment,
        sentry_release=sentry_release,
        sentry_traces_sample_rate=sentry_traces_sample_rate,
    )
    signals = signals_with_arguments(read_signal_settings(os.environ), logs_exporter, protocol)
    check_sentry(settings.sentry_dsn)
    check_exporter_packages(settings)
    from asgi_observe.setup.logs_export import check_log_exporter_package

    check_log_exporter_package(signals)
    owns_tracer = owns_meter = False
    log_export = None
    with _lock:
        if install_propagator:
            from asgi_observe.propagation import install_global_propagator

            install_global_propagator()
        if not settings.sdk_disabled:
            attributes = dict(resource_attributes or {})
            if service_name:
                attributes["service.name"] = service_name
            from opentelemetry.sdk.resources import Resource

            resource = with_instance_id(Resource.create(attributes))
            if not is_configured():
                install_tracer_provider(
                    settings, resource, sampler, endpoint, headers, span_exporter
                )
                owns_tracer = True
            if settings.metrics_exporters and not _meter_provider_set():
                install_meter_provider(settings, resource, endpoint, headers)
                owns_meter = True
            if signals.logs_exporters:
                from asgi_observe.setup.logs_export import install_log_export_once

                log_export = install_log_export_once(signals, resource, endpoint, headers)
    sentry = init_sentry(settings)
    return TelemetryHandle(
        settings,
        owns_tracer=owns_tracer,
        owns_meter=owns_meter,
        sentry=sentry,
        signals=signals,
        log_export=log_export,
    )


def _with_arguments(
    settings: Settings,
    *,
    traces_exporter: str | Sequence[str] | None,
    metrics_exporter: str | Sequence[str] | None,
    protocol: str | None,
    endpoint: str | None,
    sentry_dsn: str | None,
    sentry_environment: str | None,
    sentry_release: str | None,
    sentry_traces_sample_rate: float | None,
) -> Settings:
    changes: dict[str, object] = {}
    if endpoint is not None:
        chosen = (protocol or settings.traces_protocol).strip().lower()
        _settings.check_endpoint("endpoint", endpoint, grpc=chosen == "grpc")
        changes["traces_exporters"] = changes["metrics_exporters"] = ("otlp",)
    for name, value in (("traces", traces_exporter), ("metrics", metrics_exporter)):
        if value is not None:
            raw = value if isinstance(value, str) else ",".join(value)
            changes[f"{name}_exporters"] = _settings.parse_exporters(f"{name}_exporter", raw)
    if protocol is not None:
        changes["traces_protocol"] = changes["metrics_protocol"] = _settings.parse_protocol(
            "protocol", protocol
        )
    if sentry_traces_sample_rate is not None:
        rate = str(sentry_traces_sample_rate)
        changes["sentry_traces_sample_rate"] = _settings.parse_rate(
            "sentry_traces_sample_rate", rate
        )
    for name, text in (
        ("sentry_dsn", sentry_dsn),
        ("sentry_environment", sentry_environment),
        ("sentry_release", sentry_release),
    ):
        if text is not None:
            changes[name] = text or None
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


def _meter_provider_set() -> bool:
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    return not isinstance(metrics.get_meter_provider(), _ProxyMeterProvider)
