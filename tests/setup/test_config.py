"""configure(): providers, exporters, propagators and Sentry from arguments and variables."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from otel_reset import fresh  # noqa: F401

from asgi_observe import configure
from asgi_observe.propagation import is_w3c_global
from asgi_observe.setup.config import is_configured, validate_environment
from asgi_observe.setup.export_log import EXPORT_LOGGER_NAME, ExportFailureFilter

pytestmark = pytest.mark.usefixtures("fresh")


def sdk_provider() -> TracerProvider:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    return provider


def processors() -> list[Any]:
    return list(sdk_provider()._active_span_processor._span_processors)


def exporter_of(processor: Any) -> Any:
    # BatchSpanProcessor keeps its exporter on the shared batch machinery.
    batch = getattr(processor, "_batch_processor", None)
    return batch._exporter if batch is not None else processor.span_exporter


# --- nothing configured -------------------------------------------------------------------


def test_nothing_configured_installs_a_provider_without_exporters() -> None:
    """Trace ids exist for log correlation, but spans go nowhere and no meter is set."""
    handle = configure()

    assert [] == processors()
    assert () == handle.traces_exporters
    assert () == handle.metrics_exporters
    assert handle.owns_tracer_provider
    assert not handle.owns_meter_provider
    assert not isinstance(metrics.get_meter_provider(), MeterProvider)
    with trace.get_tracer("t").start_as_current_span("s") as span:
        assert span.get_span_context().is_valid
        assert span.is_recording()


def test_default_sampler_is_parent_based_always_on() -> None:
    configure()

    sampler = sdk_provider().sampler
    assert isinstance(sampler, ParentBased)
    assert "ParentBased{root:AlwaysOnSampler" in sampler.get_description()


def test_is_configured_reports_any_global_provider() -> None:
    assert not is_configured()
    trace.set_tracer_provider(TracerProvider())
    assert is_configured()


# --- exporters from the variables --------------------------------------------------------


def test_an_endpoint_alone_chooses_otlp_over_http_protobuf(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")

    handle = configure()

    [processor] = processors()
    assert isinstance(processor, BatchSpanProcessor)
    exporter = exporter_of(processor)
    assert isinstance(exporter, OTLPSpanExporter)
    assert "FastOTLPSpanExporter" == type(exporter).__name__  # the official, our encoding
    assert "http://127.0.0.1:9/v1/traces" == exporter._endpoint
    assert ("otlp",) == handle.traces_exporters
    assert ("otlp",) == handle.metrics_exporters
    provider = metrics.get_meter_provider()
    assert isinstance(provider, MeterProvider)
    [reader] = provider._metric_readers
    assert isinstance(reader._exporter, OTLPMetricExporter)


def test_grpc_protocol_chooses_the_grpc_exporters(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")

    configure()

    [processor] = processors()
    assert isinstance(exporter_of(processor), OTLPSpanExporter)


def test_console_exporter_prints_each_span(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")

    configure()

    [processor] = processors()
    assert isinstance(processor, SimpleSpanProcessor)
    assert isinstance(processor.span_exporter, ConsoleSpanExporter)


def test_exporter_none_wins_over_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")

    handle = configure()

    assert [] == processors()
    assert ((), ()) == (handle.traces_exporters, handle.metrics_exporters)


def test_resource_reads_service_name_and_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,team=pay%20ments")

    configure()

    attributes = sdk_provider().resource.attributes
    assert ("checkout", "prod", "pay ments") == (
        attributes["service.name"],
        attributes["deployment.environment"],
        attributes["team"],
    )


def test_sampler_variables_reach_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")

    configure()

    sampler = sdk_provider().sampler
    assert isinstance(sampler, TraceIdRatioBased)
    assert 0.25 == sampler.rate


def test_sdk_disabled_installs_no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")

    handle = configure()

    assert not is_configured()
    assert not handle.owns_tracer_provider


# --- arguments ----------------------------------------------------------------------------


def test_arguments_win_over_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")

    configure(service_name="from-arg", traces_exporter="console", sampler=ALWAYS_OFF)

    provider = sdk_provider()
    assert "from-arg" == provider.resource.attributes["service.name"]
    assert ALWAYS_OFF is provider.sampler
    [processor] = processors()
    assert isinstance(processor.span_exporter, ConsoleSpanExporter)


def test_endpoint_argument_is_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/ignored")

    configure(endpoint="http://127.0.0.1:9/base/", metrics_exporter="none")

    [processor] = processors()
    assert "http://127.0.0.1:9/base/v1/traces" == exporter_of(processor)._endpoint


def test_span_exporter_argument_gets_a_batch_processor() -> None:
    exporter = InMemorySpanExporter()
    handle = configure(span_exporter=exporter)

    with trace.get_tracer("t").start_as_current_span("buffered"):
        pass
    assert () == exporter.get_finished_spans()  # still in the batch
    assert handle.force_flush(5.0)
    assert ["buffered"] == [span.name for span in exporter.get_finished_spans()]


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"traces_exporter": "zipkin"}, "traces_exporter"),
        ({"metrics_exporter": ["otlp", "bogus"]}, "metrics_exporter"),
        ({"protocol": "http/json"}, "protocol"),
        ({"endpoint": "collector:port"}, "endpoint"),
        ({"sentry_traces_sample_rate": 2.0}, "sentry_traces_sample_rate"),
        ({"sentry_dsn": "not a dsn"}, "SENTRY_DSN"),
    ],
)
def test_bad_arguments_fail_naming_the_argument(arguments: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        configure(**arguments)
    assert not is_configured()


# --- providers the application set ----------------------------------------------------


def test_a_provider_the_app_set_is_kept_and_flushed_but_not_shut_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = InMemorySpanExporter()
    mine = TracerProvider()
    mine.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(mine)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")

    handle = configure()
    with trace.get_tracer("t").start_as_current_span("mine"):
        pass
    handle.shutdown()

    assert mine is trace.get_tracer_provider()
    assert not handle.owns_tracer_provider
    assert ["mine"] == [span.name for span in exporter.get_finished_spans()]
    with trace.get_tracer("t").start_as_current_span("after shutdown"):
        pass
    mine.force_flush()
    assert 2 == len(exporter.get_finished_spans())


def test_configure_twice_keeps_the_first_provider() -> None:
    first = configure()
    provider = trace.get_tracer_provider()

    second = configure()

    assert provider is trace.get_tracer_provider()
    assert (True, False) == (first.owns_tracer_provider, second.owns_tracer_provider)


# --- propagators ------------------------------------------------------------------------


def test_installs_the_w3c_propagator_unless_told_not_to() -> None:
    configure(install_propagator=False)
    assert not is_w3c_global()
    configure()
    assert is_w3c_global()


def test_otel_propagators_choice_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    before = propagate.get_global_textmap()
    monkeypatch.setenv("OTEL_PROPAGATORS", "tracecontext")

    configure()

    assert before is propagate.get_global_textmap()


# --- variables validated up front ---------------------------------------------------------

BAD_VARIABLES = [
    ("OTEL_TRACES_SAMPLER_ARG", "abc"),
    ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
    ("OTEL_TRACES_SAMPLER", "sometimes"),
    ("OTEL_TRACES_EXPORTER", "jaeger"),
    ("OTEL_METRICS_EXPORTER", "otlp,prometheus"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "api-key"),
    ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a=1,(bad)=2"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:port"),
    ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "ftp://collector:4318"),
    # no scheme: the HTTP exporters would fail only at the first export
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "not-a-url"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318/v1/traces"),
    ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "collector"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://collector:4317"),
    # numbers the SDK reads itself, and would replace by its default with a log line
    ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
    ("OTEL_BSP_SCHEDULE_DELAY", "0"),
    ("OTEL_BSP_EXPORT_TIMEOUT", "1.5"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "-1"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"),
    ("OTEL_BLRP_SCHEDULE_DELAY", "later"),
    ("OTEL_BLRP_EXPORT_TIMEOUT", "-1"),
    ("OTEL_BLRP_MAX_QUEUE_SIZE", "0"),
    ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "many"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "often"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
    ("OTEL_METRIC_EXPORT_TIMEOUT", "-5"),
    ("OTEL_METRIC_EXPORT_TIMEOUT", "inf"),
    ("OTEL_RESOURCE_ATTRIBUTES", "team"),
    ("OTEL_SDK_DISABLED", "yes"),
    ("OTEL_PROPAGATORS", "tracecontext,nonexistent"),
    ("OTEL_PYTHON_EXCLUDED_URLS", "client/.*/info"),
    ("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "GET,NOT A METHOD"),
    ("SENTRY_DSN", "not-a-dsn"),
    ("SENTRY_TRACES_SAMPLE_RATE", "often"),
]


@pytest.mark.parametrize(("name", "value"), BAD_VARIABLES)
def test_a_malformed_variable_fails_at_startup_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValueError, match=name) as raised:
        configure()

    assert repr(value) in str(raised.value) or name == "SENTRY_DSN"
    assert not is_configured()  # nothing was installed before the check failed
    with pytest.raises(ValueError, match=name):
        validate_environment()


def test_validate_environment_reads_a_given_mapping() -> None:
    validate_environment({"OTEL_TRACES_EXPORTER": "console"})
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        validate_environment({"OTEL_TRACES_EXPORTER": "nope"})


@pytest.mark.parametrize(
    ("value", "paths", "prefixes"),
    [
        ("", set(), ()),
        ("/health", {"/health"}, ()),
        ("healthz, ping", {"/healthz", "/ping"}, ()),
        ("^/ready$", {"/ready"}, ()),
        ("/static/*,/assets/.*", set(), ("/assets/", "/static/")),
        ("^/internal", {"/internal"}, ()),
        ("/favicon.ico", {"/favicon.ico"}, ()),
    ],
)
def test_excluded_urls_become_paths_and_prefixes(
    monkeypatch: pytest.MonkeyPatch, value: str, paths: set[str], prefixes: Sequence[str]
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", value)

    handle = configure()

    assert (frozenset(paths), tuple(prefixes)) == (
        handle.excluded_paths,
        handle.excluded_prefixes,
    )


def test_known_methods_override_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert configure().known_methods is None
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "GET, POST,PURGE")

    assert frozenset({"GET", "POST", "PURGE"}) == configure().known_methods


# --- Sentry -------------------------------------------------------------------------------


def test_sentry_from_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    import sentry_sdk

    monkeypatch.setenv("SENTRY_DSN", "http://public@127.0.0.1:9/1")
    monkeypatch.setenv("SENTRY_ENVIRONMENT", "staging")
    monkeypatch.setenv("SENTRY_RELEASE", "1.2.3")
    monkeypatch.setenv("SENTRY_TRACES_SAMPLE_RATE", "0.5")

    handle = configure()

    options = sentry_sdk.get_client().options
    assert (True, "staging", "1.2.3", 0.5, False) == (
        handle.sentry_enabled,
        options["environment"],
        options["release"],
        options["traces_sample_rate"],
        options["auto_enabling_integrations"],
    )


def test_a_sentry_client_the_app_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    import sentry_sdk

    sentry_sdk.init(dsn="http://mine@127.0.0.1:9/2", default_integrations=False)
    client = sentry_sdk.get_client()
    monkeypatch.setenv("SENTRY_DSN", "http://theirs@127.0.0.1:9/3")

    assert configure().sentry_enabled
    assert client is sentry_sdk.get_client()


def test_no_dsn_means_no_sentry() -> None:
    assert not configure().sentry_enabled


# --- flushing -----------------------------------------------------------------------------


class StuckExporter(SpanExporter):
    """An exporter whose export blocks until released, like a black-holed collector."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        return SpanExportResult.SUCCESS


def test_force_flush_gives_up_after_its_timeout() -> None:
    exporter = StuckExporter()
    handle = configure(span_exporter=exporter)
    with trace.get_tracer("t").start_as_current_span("stuck"):
        pass

    start = time.monotonic()
    assert handle.force_flush(0.2) is False
    elapsed = time.monotonic() - start
    exporter.release.set()

    assert elapsed < 1.5


# --- one warning per interval ------------------------------------------------------------


def test_export_failures_collapse_into_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.exporter")
    limiter = ExportFailureFilter(interval_s=60)
    logger.addFilter(limiter)
    try:
        with caplog.at_level(logging.DEBUG):
            logger.debug("debug lines pass")
            for attempt in range(20):
                logger.warning("Transient error StatusCode.UNAVAILABLE, retry %d", attempt)
            logger.error("Failed to export batch")
    finally:
        logger.removeFilter(limiter)

    from_exporter = [r.getMessage() for r in caplog.records if r.name == "test.exporter"]
    ours = [r for r in caplog.records if r.name == EXPORT_LOGGER_NAME]
    assert ["debug lines pass"] == from_exporter
    assert 1 == len(ours)
    assert logging.WARNING == ours[0].levelno
    assert "StatusCode.UNAVAILABLE, retry 0" in ours[0].getMessage()


def test_after_the_interval_the_next_failure_reports_the_suppressed_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.exporter2")
    limiter = ExportFailureFilter(interval_s=0.05)
    logger.addFilter(limiter)
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                logger.warning("down")
            time.sleep(0.1)
            logger.warning("still down")
    finally:
        logger.removeFilter(limiter)

    messages = [r.getMessage() for r in caplog.records if r.name == EXPORT_LOGGER_NAME]
    assert 2 == len(messages)
    assert "(2 suppressed since the last report)" in messages[1]


def test_otlp_without_the_exporter_package_fails_at_startup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from asgi_observe.setup import exporters as _exporters

    monkeypatch.setattr(_exporters, "_importable", lambda module: False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")

    with pytest.raises(ValueError, match="pip install opentelemetry-exporter-otlp"):
        validate_environment()
    with pytest.raises(ValueError, match="opentelemetry-exporter-otlp"):
        configure()
    assert not is_configured()


def test_every_variable_and_argument_is_documented() -> None:
    """docs/configuration.md names every variable asgi_observe reads and every argument."""
    import inspect
    import re
    from pathlib import Path

    import asgi_observe.setup.settings as settings_module

    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "configuration.md").read_text(encoding="utf-8")
    import asgi_observe.metrics.backend as backend_module
    import asgi_observe.setup.signals as signals_module

    source = "".join(
        inspect.getsource(module) for module in (settings_module, signals_module, backend_module)
    )
    variables = set(re.findall(r'"((?:OTEL|SENTRY|ASGI_OBSERVE)_[A-Z_]+)"', source))
    variables |= {f"OTEL_EXPORTER_OTLP_{part}" for part in ("ENDPOINT", "HEADERS", "PROTOCOL")}
    variables |= {"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"}
    missing = sorted(name for name in variables if name not in page)
    assert [] == missing
    arguments = inspect.signature(configure).parameters
    assert [] == [name for name in arguments if f"`{name}`" not in page]


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example:4318"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
        # The gRPC exporters take host:port as it is.
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"},
        {
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4317",
        },
        {
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_BSP_EXPORT_TIMEOUT": "0",
            "OTEL_BSP_MAX_QUEUE_SIZE": "8192",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096",
            "OTEL_BLRP_SCHEDULE_DELAY": " 250 ",
            "OTEL_METRIC_EXPORT_INTERVAL": "1500.5",
            "OTEL_METRIC_EXPORT_TIMEOUT": "0",
        },
        {"OTEL_METRIC_EXPORT_INTERVAL": "inf"},  # the SDK's "no periodic export"
    ],
)
def test_well_formed_endpoints_and_numbers_pass(env: dict[str, str]) -> None:
    validate_environment(env)


def test_a_bare_endpoint_is_refused_where_a_signal_uses_http() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317",  # the metrics exporter uses HTTP
    }
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_ENDPOINT='collector:4317'"):
        validate_environment(env)
