"""Run a test with OpenTelemetry's and Sentry's process-wide state fresh, then restore it.

The API lets a global provider be set once per process; tests of configure() need to
set it again, so this resets the private "set once" guards the way OpenTelemetry's own
test utilities do (opentelemetry.test.globals_test).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry._logs import _internal as logs_internal
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.util._once import Once

from asgi_observe.setup.export_log import uninstall_export_failure_filter

ENV_PREFIXES = ("OTEL_", "SENTRY_", "PROMETHEUS_", "ASGI_OBSERVE_")


def _reset() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None
    logs_internal._LOGGER_PROVIDER_SET_ONCE = Once()
    logs_internal._LOGGER_PROVIDER = None


def _detach_log_export() -> None:
    from asgi_observe.setup.logs_export import uninstall_log_export

    uninstall_log_export()


@contextmanager
def fresh_globals() -> Iterator[None]:
    """No global providers and no Sentry client; the propagator is restored afterwards."""
    saved: tuple[Any, ...] = (
        trace._TRACER_PROVIDER_SET_ONCE,
        trace._TRACER_PROVIDER,
        metrics_internal._METER_PROVIDER_SET_ONCE,
        metrics_internal._METER_PROVIDER,
        logs_internal._LOGGER_PROVIDER_SET_ONCE,
        logs_internal._LOGGER_PROVIDER,
        propagate.get_global_textmap(),
    )
    _reset()
    try:
        yield
    finally:
        _detach_log_export()
        providers = (
            trace._TRACER_PROVIDER,
            metrics_internal._METER_PROVIDER,
            logs_internal._LOGGER_PROVIDER,
        )
        for provider in providers:
            shutdown = getattr(provider, "shutdown", None)
            if shutdown is not None and provider not in saved:
                shutdown()
        (
            trace._TRACER_PROVIDER_SET_ONCE,
            trace._TRACER_PROVIDER,
            metrics_internal._METER_PROVIDER_SET_ONCE,
            metrics_internal._METER_PROVIDER,
            logs_internal._LOGGER_PROVIDER_SET_ONCE,
            logs_internal._LOGGER_PROVIDER,
            textmap,
        ) = saved
        propagate.set_global_textmap(textmap)
        uninstall_export_failure_filter()
        _reset_sentry()


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fresh OpenTelemetry/Sentry globals and no OTEL_*/SENTRY_*/PROMETHEUS_* variables."""
    for key in list(os.environ):
        if key.startswith(ENV_PREFIXES):
            monkeypatch.delenv(key)
    with fresh_globals():
        yield


def _reset_sentry() -> None:
    import sys

    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is not None and sentry_sdk.get_client().is_active():
        sentry_sdk.get_client().close(timeout=0)
        sentry_sdk.get_global_scope().set_client(None)
