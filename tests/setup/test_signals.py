"""configure() and the variables of log export, the metrics backend and per-process identity."""

from __future__ import annotations

import logging
import uuid

import pytest
from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider
from otel_reset import fresh  # noqa: F401

from asgi_observe import configure
from asgi_observe.logs.otlp import OTLPLogHandler
from asgi_observe.setup.config import validate_environment
from asgi_observe.setup.signals import DEFAULT_LOGGERS, read_signal_settings

pytestmark = pytest.mark.usefixtures("fresh")


def our_handlers(logger: logging.Logger) -> list[OTLPLogHandler]:
    return [h for h in logger.handlers if isinstance(h, OTLPLogHandler)]


def test_nothing_asked_attaches_no_log_handler() -> None:
    handle = configure()
    assert () == handle.logs_exporters
    assert [] == our_handlers(logging.getLogger())
    assert not isinstance(_logs.get_logger_provider(), LoggerProvider)


def test_logs_exporter_installs_the_provider_and_attaches_the_handler_once() -> None:
    handle = configure(logs_exporter="console")
    configure(logs_exporter="console")  # a second call adds nothing

    assert ("console",) == handle.logs_exporters
    assert isinstance(_logs.get_logger_provider(), LoggerProvider)
    assert ("root", "uvicorn") == DEFAULT_LOGGERS
    assert 1 == len(our_handlers(logging.getLogger()))
    assert 1 == len(our_handlers(logging.getLogger("uvicorn")))
    assert logging.INFO == our_handlers(logging.getLogger())[0].level
    assert handle.owns_logger_provider

    handle.shutdown(timeout=2)
    assert [] == our_handlers(logging.getLogger())


def test_the_variables_choose_exporter_loggers_and_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://127.0.0.1:9/v1/logs")
    monkeypatch.setenv("ASGI_OBSERVE_LOGS_LOGGERS", "myapp, myapp.jobs")
    monkeypatch.setenv("ASGI_OBSERVE_LOGS_LEVEL", "warning")

    handle = configure(traces_exporter="none")

    assert ("otlp",) == handle.logs_exporters
    assert [] == our_handlers(logging.getLogger())
    [handler] = our_handlers(logging.getLogger("myapp"))
    assert logging.WARNING == handler.level
    assert 1 == len(our_handlers(logging.getLogger("myapp.jobs")))
    handle.shutdown(timeout=1)


def test_an_endpoint_alone_does_not_export_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    assert () == configure().logs_exporters


def test_a_logger_provider_the_app_set_is_kept() -> None:
    provider = LoggerProvider()
    _logs.set_logger_provider(provider)
    handle = configure(logs_exporter="otlp")
    assert _logs.get_logger_provider() is provider
    assert not handle.owns_logger_provider
    assert 1 == len(our_handlers(logging.getLogger()))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_LOGS_EXPORTER", "kafka"),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "thrift"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "ftp://x"),
        ("ASGI_OBSERVE_LOGS_LEVEL", "LOUD"),
        ("ASGI_OBSERVE_LOGS_LOGGERS", "my app"),
        ("ASGI_OBSERVE_METRICS_BACKEND", "statsd"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes"),
    ],
)
def test_a_bad_value_fails_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        validate_environment()
    with pytest.raises(ValueError, match=variable):
        configure()


def test_good_values_are_read() -> None:
    settings = read_signal_settings(
        {
            "OTEL_LOGS_EXPORTER": "otlp,console",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "ASGI_OBSERVE_LOGS_LEVEL": "25",
            "ASGI_OBSERVE_METRICS_BACKEND": "both",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "DELTA",
        }
    )
    assert (("otlp", "console"), "grpc", 25, "both") == (
        settings.logs_exporters,
        settings.logs_protocol,
        settings.log_level,
        settings.metrics_backend,
    )


# --- one identity per process -------------------------------------------------------------


def test_each_configured_process_gets_its_own_service_instance_id() -> None:
    configure(metrics_exporter="console")
    tracer_resource = trace.get_tracer_provider().resource  # type: ignore[attr-defined]
    meter_resource = metrics.get_meter_provider()._sdk_config.resource  # type: ignore[attr-defined]
    instance = tracer_resource.attributes["service.instance.id"]
    assert str(uuid.UUID(str(instance))) == instance
    assert instance == meter_resource.attributes["service.instance.id"]


def test_a_given_service_instance_id_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-7")
    configure()
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    assert "pod-7" == provider.resource.attributes["service.instance.id"]
