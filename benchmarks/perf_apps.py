"""uvicorn factories for perf_server.py: one Starlette app bare, with observe(), with the peers.

`uvicorn --factory --app-dir benchmarks perf_apps:ours` builds one of them in the server
process, with the process-wide setup of stack_rows.Environment (one TracerProvider with a
BatchSpanProcessor and a dropping exporter, a Sentry client whose DSN points at a closed
port) and the global propagator the row's middleware reads.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import propagate
from stack_rows import Environment, observe_full, peer_stack, span_only, starlette_app

_env: Environment | None = None


def _environment() -> Environment:
    global _env
    if _env is None:
        _env = Environment()
    return _env


def bare() -> Any:
    return starlette_app()


def ours() -> Any:
    env = _environment()
    propagate.set_global_textmap(env.ours)
    return observe_full(env)


def floor() -> Any:
    env = _environment()
    propagate.set_global_textmap(env.ours)
    return span_only(env)


def peers() -> Any:
    env = _environment()
    propagate.set_global_textmap(env.otel_default)
    return peer_stack(env)


APPS = ("bare", "floor", "ours", "peers")
