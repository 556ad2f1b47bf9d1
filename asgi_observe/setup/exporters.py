"""Build the SDK providers, processors and exporters configure() chose."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace

from asgi_observe.setup.export_log import install_export_failure_filter
from asgi_observe.setup.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

_SIGNAL_PATHS = {"traces": "v1/traces", "metrics": "v1/metrics", "logs": "v1/logs"}


def install_tracer_provider(
    settings: Settings,
    resource: Resource,
    sampler: Sampler | None,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
    span_exporter: SpanExporter | None,
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # sampler=None: the SDK reads OTEL_TRACES_SAMPLER(_ARG), validated above.
    provider = TracerProvider(sampler=sampler, resource=resource)
    processors: list[SpanProcessor] = [
        _span_processor(kind, settings.traces_protocol, endpoint, headers)
        for kind in settings.traces_exporters
    ]
    if span_exporter is not None:
        processors.append(BatchSpanProcessor(span_exporter))
    if processors:
        install_export_failure_filter()
    for processor in processors:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)


def _span_processor(
    kind: str, protocol: str, endpoint: str | None, headers: Mapping[str, str] | None
) -> SpanProcessor:
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    if kind == "console":
        # A debugging aid: print each span as it ends rather than in batches.
        return SimpleSpanProcessor(ConsoleSpanExporter())
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )

            return BatchSpanProcessor(GrpcSpanExporter(endpoint=endpoint, headers=_dict(headers)))
        # The official OTLP/HTTP exporter, encoding with ours (span_exporter.py).
        from asgi_observe.setup.span_exporter import FastOTLPSpanExporter
    except ImportError as exc:
        raise ImportError(_MISSING_OTLP) from exc
    url = _signal_url(endpoint, "traces")
    return BatchSpanProcessor(FastOTLPSpanExporter(endpoint=url, headers=headers))


def install_meter_provider(
    settings: Settings,
    resource: Resource,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )

    readers: list[MetricReader] = []
    for kind in settings.metrics_exporters:
        exporter: MetricExporter
        if kind == "console":
            exporter = ConsoleMetricExporter()
        else:
            exporter = _otlp_metric_exporter(settings.metrics_protocol, endpoint, headers)
        readers.append(PeriodicExportingMetricReader(exporter))
    install_export_failure_filter()
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))


def _otlp_metric_exporter(
    protocol: str, endpoint: str | None, headers: Mapping[str, str] | None
) -> MetricExporter:
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcMetricExporter,
            )

            return GrpcMetricExporter(endpoint=endpoint, headers=_dict(headers))
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    except ImportError as exc:
        raise ImportError(_MISSING_OTLP) from exc
    return OTLPMetricExporter(endpoint=_signal_url(endpoint, "metrics"), headers=headers)


def _signal_url(endpoint: str | None, signal: str) -> str | None:
    # An `endpoint` argument is a base URL, like OTEL_EXPORTER_OTLP_ENDPOINT; the HTTP
    # exporters want the signal's full URL. None: the exporter reads the variables.
    if endpoint is None:
        return None
    return f"{endpoint.rstrip('/')}/{_SIGNAL_PATHS[signal]}"


_MISSING_OTLP = (
    "OTLP export needs opentelemetry-exporter-otlp: pip install opentelemetry-exporter-otlp"
)


def _dict(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if headers is None else dict(headers)


def check_exporter_packages(settings: Settings) -> None:
    """Raise ValueError when an OTLP exporter was chosen but its package is missing."""
    for exporters, protocol in (
        (settings.traces_exporters, settings.traces_protocol),
        (settings.metrics_exporters, settings.metrics_protocol),
    ):
        package = "grpc" if protocol == "grpc" else "http"
        if "otlp" in exporters and not _importable(f"opentelemetry.exporter.otlp.proto.{package}"):
            raise ValueError(
                f"OTLP export over {protocol} needs opentelemetry-exporter-otlp: "
                "pip install opentelemetry-exporter-otlp"
            )


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False
