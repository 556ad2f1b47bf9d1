"""uvicorn factories for perf_server.py: one Starlette app bare, with observe(), with the peers.

`uvicorn --factory --app-dir benchmarks perf_apps:ours_otlp` builds one of them in the
server process, with the process-wide setup of stack_rows.Environment (a Sentry client
whose DSN points at a closed port) and the global propagator the row's middleware reads.
The `_otlp` apps export their spans as configure() would, through a BatchSpanProcessor and
the OTLP/HTTP exporter, to the loopback receiver perf_server.py started
(`BENCH_OTLP_ENDPOINT`); the others to an exporter that drops them (export excluded).
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import propagate
from stack_rows import (
    Environment,
    Exporting,
    observe_full,
    peer_stack,
    span_only,
    starlette_app,
)

ENDPOINT_VARIABLE = "BENCH_OTLP_ENDPOINT"
_env: Environment | None = None
_exporting: dict[bool, Exporting] = {}


def _environment() -> Environment:
    global _env
    if _env is None:
        _env = Environment()
    return _env


def _exporting_environment(*, ours: bool) -> Exporting:
    if ours not in _exporting:
        _exporting[ours] = Exporting(_environment(), os.environ[ENDPOINT_VARIABLE], ours=ours)
    return _exporting[ours]


def bare() -> Any:
    return starlette_app()


def ours() -> Any:
    env = _environment()
    propagate.set_global_textmap(env.ours)
    return observe_full(env)


def ours_otlp() -> Any:
    env = _exporting_environment(ours=True)
    propagate.set_global_textmap(env.ours)
    return observe_full(env)


def floor_otlp() -> Any:
    env = _exporting_environment(ours=False)
    propagate.set_global_textmap(env.ours)
    return span_only(env)


def peers_otlp() -> Any:
    env = _exporting_environment(ours=False)
    propagate.set_global_textmap(env.otel_default)
    return peer_stack(env)


APPS = ("bare", "floor_otlp", "ours_otlp", "peers_otlp", "ours")
