"""Read and validate the variables of log export and of the metrics backend.

Kept apart from settings.py (traces, metrics exporters, sampling, Sentry) so each set of
variables has one reader; both raise ValueError naming the variable.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from asgi_observe.metrics.backend import BACKEND_VAR, parse_backend
from asgi_observe.setup import settings as _settings

LOGGERS_VAR = "ASGI_OBSERVE_LOGS_LOGGERS"
LEVEL_VAR = "ASGI_OBSERVE_LOGS_LEVEL"
ROOT = "root"
# The root logger gets the app's records and hypercorn's (hypercorn.error propagates);
# uvicorn's loggers do not propagate to the root, so "uvicorn" is named as well.
DEFAULT_LOGGERS = (ROOT, "uvicorn")
DEFAULT_LEVEL = logging.INFO
TEMPORALITIES = ("cumulative", "delta", "lowmemory")


@dataclass(frozen=True)
class SignalSettings:
    """What the environment asked for logs and the metrics backend, validated."""

    logs_exporters: tuple[str, ...] = ()
    logs_protocol: str = "http/protobuf"
    log_loggers: tuple[str, ...] = DEFAULT_LOGGERS
    log_level: int = DEFAULT_LEVEL
    metrics_backend: str = "auto"


def read_signal_settings(env: Mapping[str, str]) -> SignalSettings:
    """Validate the log export and metrics backend variables; raise ValueError naming one."""
    _settings._check_headers(env, "OTEL_EXPORTER_OTLP_LOGS_HEADERS")
    _check_temporality(env)
    raw_exporters = env.get("OTEL_LOGS_EXPORTER", "").strip()
    raw_backend = env.get(BACKEND_VAR, "").strip()
    return SignalSettings(
        # Unlike traces and metrics, an endpoint alone does not turn log export on:
        # it attaches a handler to the app's loggers, which it must ask for.
        logs_exporters=(
            _settings.parse_exporters("OTEL_LOGS_EXPORTER", raw_exporters) if raw_exporters else ()
        ),
        logs_protocol=_protocol(env),
        log_loggers=_loggers(env),
        log_level=parse_level(LEVEL_VAR, env.get(LEVEL_VAR, "")),
        metrics_backend=parse_backend(BACKEND_VAR, raw_backend) if raw_backend else "auto",
    )


def signals_with_arguments(
    signals: SignalSettings, logs_exporter: str | Sequence[str] | None, protocol: str | None
) -> SignalSettings:
    """`signals` with configure()'s arguments applied (arguments win over variables)."""
    changes: dict[str, object] = {}
    if logs_exporter is not None:
        raw = logs_exporter if isinstance(logs_exporter, str) else ",".join(logs_exporter)
        changes["logs_exporters"] = _settings.parse_exporters("logs_exporter", raw)
    if protocol is not None:
        changes["logs_protocol"] = _settings.parse_protocol("protocol", protocol)
    return dataclasses.replace(signals, **changes)  # type: ignore[arg-type]


def parse_level(name: str, raw: str) -> int:
    """A stdlib level from its name ("INFO") or number ("20"); empty means the default."""
    text = raw.strip().upper()
    if not text:
        return DEFAULT_LEVEL
    if text.isdigit():
        return int(text)
    level = logging.getLevelName(text)  # the number, for a level name
    if not isinstance(level, int):
        raise ValueError(f"{name}={raw!r}: expected a level such as INFO or WARNING")
    return level


def _loggers(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get(LOGGERS_VAR, "")
    if not raw.strip():
        return DEFAULT_LOGGERS
    names = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    for name in names:
        if any(c.isspace() for c in name) or name.startswith(".") or name.endswith("."):
            raise ValueError(f"{LOGGERS_VAR}={raw!r}: {name!r} is not a logger name")
    return names


def _protocol(env: Mapping[str, str]) -> str:
    for name in ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = env.get(name, "").strip()
        if raw:
            return _settings.parse_protocol(name, raw)
    return "http/protobuf"


def _check_temporality(env: Mapping[str, str]) -> None:
    name = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
    raw = env.get(name, "").strip()
    if raw and raw.lower() not in TEMPORALITIES:
        raise ValueError(f"{name}={raw!r}: expected one of {', '.join(TEMPORALITIES)}")
