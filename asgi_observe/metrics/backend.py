"""Which backends record the RED metrics: prometheus-client, the OpenTelemetry meter, or both."""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import metrics

__all__ = ["BACKENDS", "BACKEND_VAR", "meter_provider_active", "parse_backend", "resolve_backend"]

BACKEND_VAR = "ASGI_OBSERVE_METRICS_BACKEND"
# "otlp" is the name people reach for first; it means the meter, whatever it exports to.
BACKENDS = ("auto", "prometheus", "otel", "otlp", "both")


def parse_backend(name: str, raw: str) -> str:
    """Normalise a backend choice ("otlp" is "otel"); raise ValueError naming `name`."""
    choice = raw.strip().lower()
    if choice not in BACKENDS:
        raise ValueError(f"{name}={raw!r}: expected one of {', '.join(BACKENDS)}")
    return "otel" if choice == "otlp" else choice


def backend_from_env(env: Mapping[str, str] | None = None) -> str:
    """The backend ``ASGI_OBSERVE_METRICS_BACKEND`` asks for ("auto" when unset)."""
    raw = (os.environ if env is None else env).get(BACKEND_VAR, "").strip()
    return parse_backend(BACKEND_VAR, raw) if raw else "auto"


def meter_provider_active(meter_provider: object = None) -> bool:
    """Whether measurements made through the meter go anywhere.

    True for a provider given explicitly, or a global one that configure() or the
    application set (the API's proxy and no-op providers drop everything).
    """
    if meter_provider is not None:
        return not isinstance(meter_provider, metrics.NoOpMeterProvider)
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    provider = metrics.get_meter_provider()
    return not isinstance(provider, (_ProxyMeterProvider, metrics.NoOpMeterProvider))


def resolve_backend(
    backend: str | None, *, meter_provider: object = None, exposition: bool = False
) -> tuple[bool, bool]:
    """(record with prometheus-client, record with the meter) for a backend choice.

    "auto": the meter when a meter provider is active, prometheus-client when none is,
    and prometheus-client as well when an exposition is served (`exposition`, as
    observe(metrics_path=...) does): each reader gets every request once, none twice.
    """
    choice = backend_from_env() if backend is None else parse_backend("backend", backend)
    if choice == "prometheus":
        return True, False
    if choice == "otel":
        return False, True
    if choice == "both":
        return True, True
    active = meter_provider_active(meter_provider)
    return (not active or exposition), active
