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
from asgi_observe.setup.sentry_init import check_sentry, init_sentry
from asgi_observe.setup.settings import Settings, read_settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

__all__ = ["TelemetryHandle", "configure", "is_configured", "validate_environment"]

_lock = threading.Lock()


class TelemetryHandle:
    """What `configure()` set up, and the way to flush it.

    Attributes:
        excluded_paths / excluded_prefixes: paths from ``OTEL_PYTHON_EXCLUDED_URLS``.
        known_methods: methods from ``OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`` (None:
            the default set).
        traces_exporters / metrics_exporters: the exporters in use (empty: none).
        sentry_enabled: whether a Sentry client is active.
        owns_tracer_provider / owns_meter_provider: whether configure() installed them
            (a provider the application set is flushed but never shut down).

    Since 0.1.0.
    """

    def __init__(
        self, settings: Settings, *, owns_tracer: bool, owns_meter: bool, sentry: bool
    ) -> None:
        self.excluded_paths = settings.excluded_paths
        self.excluded_prefixes = settings.excluded_prefixes
        self.known_methods = settings.known_methods
        self.traces_exporters = settings.traces_exporters
        self.metrics_exporters = settings.metrics_exporters
        self.sentry_enabled = sentry
        self.owns_tracer_provider = owns_tracer
        self.owns_meter_provider = owns_meter

    def force_flush(self, timeout: float = 5.0) -> bool:
        """Export buffered spans, metrics and Sentry events; wait at most `timeout` s."""
        return flush_telemetry(timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush, then shut down the providers configure() installed."""
        self.force_flush(timeout)
        for owned, provider in (
            (self.owns_tracer_provider, trace.get_tracer_provider()),
            (self.owns_meter_provider, metrics.get_meter_provider()),
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
    settings = read_settings(os.environ if environ is None else environ)
    check_sentry(settings.sentry_dsn)
    check_exporter_packages(settings)


def configure(
    *,
    service_name: str | None = None,
    resource_attributes: Mapping[str, str | bool | int | float] | None = None,
    traces_exporter: str | Sequence[str] | None = None,
    metrics_exporter: str | Sequence[str] | None = None,
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
    naming it. See docs/configuration.md for every option and variable.

    Since 0.1.0.
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
    check_sentry(settings.sentry_dsn)
    check_exporter_packages(settings)
    owns_tracer = owns_meter = False
    with _lock:
        if install_propagator:
            from asgi_observe.propagation import install_global_propagator

            install_global_propagator()
        if not settings.sdk_disabled:
            attributes = dict(resource_attributes or {})
            if service_name:
                attributes["service.name"] = service_name
            from opentelemetry.sdk.resources import Resource

            resource = Resource.create(attributes)
            if not is_configured():
                install_tracer_provider(
                    settings, resource, sampler, endpoint, headers, span_exporter
                )
                owns_tracer = True
            if settings.metrics_exporters and not _meter_provider_set():
                install_meter_provider(settings, resource, endpoint, headers)
                owns_meter = True
    sentry = init_sentry(settings)
    return TelemetryHandle(settings, owns_tracer=owns_tracer, owns_meter=owns_meter, sentry=sentry)


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
