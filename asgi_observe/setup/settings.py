"""Read and validate the OTEL_* / SENTRY_* variables once, before anything is built.

Every check raises ValueError naming the variable, so a typo fails at startup, never
mid-request. The values are then handed to the SDK's own classes, which read most of
them again themselves; nothing here re-implements what those classes do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from asgi_observe.setup.sdk_numbers import check_sdk_numbers

EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("grpc", "http/protobuf")
# opentelemetry.sdk.trace.sampling._KNOWN_SAMPLERS
SAMPLERS = (
    "always_on",
    "always_off",
    "parentbased_always_on",
    "parentbased_always_off",
    "traceidratio",
    "parentbased_traceidratio",
)
_BUILTIN_PROPAGATORS = ("tracecontext", "baggage", "none")
# RFC 9110 section 5.6.2 token; also the header-name rule of the OTLP exporter spec.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# The path forms OTEL_PYTHON_EXCLUDED_URLS may take here: exact, or a prefix ending "*"
# or ".*"; optional regex anchors are accepted because the variable is a regex list.
_EXCLUDED = re.compile(r"\^?(/?[^\\^$*+?()\[\]{}|]*?)(\.?\*)?\$?")


@dataclass(frozen=True)
class Settings:
    """What the environment asked for, validated."""

    sdk_disabled: bool = False
    traces_exporters: tuple[str, ...] = ()
    metrics_exporters: tuple[str, ...] = ()
    traces_protocol: str = "http/protobuf"
    metrics_protocol: str = "http/protobuf"
    excluded_paths: frozenset[str] = frozenset()
    excluded_prefixes: tuple[str, ...] = ()
    known_methods: frozenset[str] | None = None
    sentry_dsn: str | None = None
    sentry_environment: str | None = None
    sentry_release: str | None = None
    sentry_traces_sample_rate: float | None = None


def read_settings(env: Mapping[str, str]) -> Settings:
    """Validate every variable asgi_observe reads; raise ValueError naming a bad one."""
    _check_resource_attributes(env)
    _check_sampler(env)
    _check_propagators(env)
    protocols = {signal: _protocol(env, signal) for signal in ("TRACES", "METRICS", "LOGS")}
    for name in ("", "TRACES_", "METRICS_", "LOGS_"):
        # host:port without a scheme is what the gRPC exporters take; HTTP needs a URL.
        grpc = all(p == "grpc" for s, p in protocols.items() if name in ("", f"{s}_"))
        _check_endpoint(env, f"OTEL_EXPORTER_OTLP_{name}ENDPOINT", grpc=grpc)
        _check_headers(env, f"OTEL_EXPORTER_OTLP_{name}HEADERS")
    check_sdk_numbers(env)
    excluded_paths, excluded_prefixes = _excluded(env)
    return Settings(
        sdk_disabled=_boolean(env, "OTEL_SDK_DISABLED"),
        traces_exporters=_exporters(env, "TRACES"),
        metrics_exporters=_exporters(env, "METRICS"),
        traces_protocol=_protocol(env, "TRACES"),
        metrics_protocol=_protocol(env, "METRICS"),
        excluded_paths=excluded_paths,
        excluded_prefixes=excluded_prefixes,
        known_methods=_known_methods(env),
        sentry_dsn=env.get("SENTRY_DSN") or None,
        sentry_environment=env.get("SENTRY_ENVIRONMENT") or None,
        sentry_release=env.get("SENTRY_RELEASE") or None,
        sentry_traces_sample_rate=_rate(env, "SENTRY_TRACES_SAMPLE_RATE"),
    )


def _fail(name: str, value: str, why: str) -> ValueError:
    return ValueError(f"{name}={value!r}: {why}")


def _boolean(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value not in ("", "true", "false"):
        raise _fail(name, env[name], "expected 'true' or 'false'")
    return value == "true"


def _rate(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name, "").strip()
    return parse_rate(name, raw) if raw else None


def parse_rate(name: str, raw: str) -> float:
    try:
        rate = float(raw)
    except ValueError:
        raise _fail(name, raw, "expected a number between 0 and 1") from None
    if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
        raise _fail(name, raw, "expected a number between 0 and 1")
    return rate


def _exporters(env: Mapping[str, str], signal: str) -> tuple[str, ...]:
    name = f"OTEL_{signal}_EXPORTER"
    raw = env.get(name, "").strip()
    if raw:
        return parse_exporters(name, raw)
    # Not the SDK default ("otlp"): with no endpoint either, nothing is configured and
    # nothing is exported (see docs/configuration.md, "Nothing configured").
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    return ("otlp",) if any(env.get(e, "").strip() for e in endpoints) else ()


def parse_exporters(name: str, raw: str) -> tuple[str, ...]:
    """Parse a comma-separated exporter list; "none" anywhere means no exporter."""
    chosen = [part.strip().lower() for part in raw.split(",") if part.strip()]
    for exporter in chosen:
        if exporter not in EXPORTERS:
            raise _fail(
                name, raw, f"unknown exporter {exporter!r} (supported: otlp, console, none)"
            )
    if "none" in chosen:
        return ()
    return tuple(dict.fromkeys(chosen))


def _protocol(env: Mapping[str, str], signal: str) -> str:
    for name in (f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = env.get(name, "").strip()
        if raw:
            return parse_protocol(name, raw)
    return "http/protobuf"


def parse_protocol(name: str, raw: str) -> str:
    if raw.strip().lower() not in PROTOCOLS:
        raise _fail(name, raw, "unknown protocol (supported: grpc, http/protobuf)")
    return raw.strip().lower()


def _check_endpoint(env: Mapping[str, str], name: str, *, grpc: bool) -> None:
    raw = env.get(name, "").strip()
    if raw:
        check_endpoint(name, raw, grpc=grpc)


def check_endpoint(name: str, raw: str, *, grpc: bool = False) -> None:
    """An OTLP endpoint: an http(s) URL with a host; for gRPC also `host:port`."""
    bare = "://" not in raw
    if bare and not grpc:
        raise _fail(name, raw, "expected a URL with its scheme, such as http://collector:4318")
    parts = urlsplit(f"//{raw}" if bare else raw)
    try:
        port = parts.port  # raises ValueError on a port that is not a number
    except ValueError:
        raise _fail(name, raw, "the port is not a number between 0 and 65535") from None
    if bare and (port is None or not parts.hostname or parts.path):
        raise _fail(name, raw, "expected host:port or a URL such as http://collector:4317")
    if not bare and (parts.scheme not in ("http", "https") or not parts.hostname):
        raise _fail(name, raw, "expected a URL such as http://collector:4318")


def _check_headers(env: Mapping[str, str], name: str) -> None:
    raw = env.get(name, "")
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, _ = item.partition("=")
        if not sep or not _TOKEN.fullmatch(key.strip()):
            raise _fail(name, raw, f"{item.strip()!r} is not of the form key=value")


def _check_resource_attributes(env: Mapping[str, str]) -> None:
    name = "OTEL_RESOURCE_ATTRIBUTES"
    raw = env.get(name, "")
    for item in raw.split(","):
        key, sep, _ = item.partition("=")
        if item.strip() and (not sep or not key.strip()):
            raise _fail(name, raw, f"{item.strip()!r} is not of the form key=value")


def _check_sampler(env: Mapping[str, str]) -> None:
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip()
    if sampler and sampler.lower() not in SAMPLERS:
        raise _fail(
            "OTEL_TRACES_SAMPLER",
            sampler,
            "unknown sampler (supported: " + ", ".join(SAMPLERS) + ")",
        )
    _rate(env, "OTEL_TRACES_SAMPLER_ARG")


def _check_propagators(env: Mapping[str, str]) -> None:
    raw = env.get("OTEL_PROPAGATORS", "")
    names = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = [name for name in names if name.lower() not in _BUILTIN_PROPAGATORS]
    if unknown:
        from opentelemetry.util._importlib_metadata import entry_points

        for name in unknown:
            if not tuple(entry_points(group="opentelemetry_propagator", name=name)):
                raise _fail("OTEL_PROPAGATORS", raw, f"propagator {name!r} is not installed")


def _excluded(env: Mapping[str, str]) -> tuple[frozenset[str], tuple[str, ...]]:
    name = "OTEL_PYTHON_EXCLUDED_URLS"
    raw = env.get(name, "")
    paths: set[str] = set()
    prefixes: set[str] = set()
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        match = _EXCLUDED.fullmatch(item)
        if match is None or not match.group(1).strip("/"):
            raise _fail(name, raw, f"{item!r} is not a path ('/health') or a prefix ('/static/*')")
        path = "/" + match.group(1).lstrip("/")
        (prefixes if match.group(2) else paths).add(path)
    return frozenset(paths), tuple(sorted(prefixes))


def _known_methods(env: Mapping[str, str]) -> frozenset[str] | None:
    name = "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS"
    raw = env.get(name, "")
    methods = [part.strip() for part in raw.split(",") if part.strip()]
    if not methods:
        return None
    for method in methods:
        if not _TOKEN.fullmatch(method):
            raise _fail(name, raw, f"{method!r} is not an HTTP method name")
    return frozenset(methods)
