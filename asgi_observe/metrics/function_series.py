"""The series behind measured(): prometheus-client metrics and meter instruments, cached."""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics

from asgi_observe.metrics.otel import METER_NAME

Values = tuple[str, ...]


class PrometheusSeries:
    """``{name}_calls_total``, ``{name}_errors_total`` and ``{name}_duration_seconds``."""

    def __init__(
        self,
        name: str,
        labels: tuple[str, ...],
        description: str,
        registry: Any,
        buckets: tuple[float, ...],
    ) -> None:
        from prometheus_client import REGISTRY, Counter, Histogram

        registry = REGISTRY if registry is None else registry
        self._calls = Counter(f"{name}_calls", description, (*labels, "outcome"), registry=registry)
        self._errors = Counter(
            f"{name}_errors", f"{description} Errors by type.", (*labels, "error_type"),
            registry=registry,
        )  # fmt: skip
        self._duration = Histogram(
            f"{name}_duration_seconds", f"{description} Duration.", (*labels, "outcome"),
            buckets=buckets, registry=registry,
        )  # fmt: skip
        self._children: dict[tuple[Values, str], tuple[Any, Any]] = {}

    def record(self, values: Values, outcome: str, error_type: str | None, duration: float) -> None:
        key = (values, outcome)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self._calls.labels(*values, outcome).inc,
                self._duration.labels(*values, outcome).observe,
            )
        children[0]()
        children[1](duration)
        if error_type is not None:
            self._errors.labels(*values, error_type).inc()


class OtelSeries:
    """``{name}.calls``, ``{name}.errors`` and ``{name}.duration`` through the meter."""

    def __init__(
        self,
        name: str,
        labels: tuple[str, ...],
        description: str,
        meter_provider: Any,
        buckets: tuple[float, ...],
    ) -> None:
        provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
        meter = provider.get_meter(METER_NAME)
        self._labels = labels
        self._calls = meter.create_counter(f"{name}.calls", unit="{call}", description=description)
        self._errors = meter.create_counter(
            f"{name}.errors", unit="{error}", description=f"{description} Errors by type."
        )
        self._duration = meter.create_histogram(
            f"{name}.duration",
            unit="s",
            description=f"{description} Duration.",
            explicit_bucket_boundaries_advisory=buckets,
        )
        self._attributes: dict[tuple[Values, str], dict[str, str]] = {}

    def record(self, values: Values, outcome: str, error_type: str | None, duration: float) -> None:
        key = (values, outcome)
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = dict(zip(self._labels, values, strict=False))
            attributes["outcome"] = outcome
            self._attributes[key] = attributes
        self._calls.add(1, attributes)
        self._duration.record(duration, attributes)
        if error_type is not None:
            errors = dict(zip(self._labels, values, strict=False))
            errors["error.type"] = error_type
            self._errors.add(1, errors)
