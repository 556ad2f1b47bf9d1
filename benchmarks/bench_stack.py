"""observe() against every peer on one Starlette app, the unavoidable parts, and the budgets.

Run: `.venv/bin/python -m pytest benchmarks/bench_stack.py --benchmark-enable`
(request and part rows report times per batch of `harness.BATCH`). For ratios that hold
on a busy machine, `benchmarks/run.py` measures the same rows interleaved; see
docs/performance.md.

The budget tests at the end run in the normal test run too: they assert the design
card's budget (well under a millisecond per request and per span) with a margin of more
than ten times what this machine measures, so a loaded CI box does not fail them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from harness import BATCH, Driver, benchmark_rounds, http_scope, run
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.asgi import asgi_getter
from stack_rows import (
    ALL_PART_NAMES,
    OURS_FULL,
    ROWS,
    SAMPLED,
    Environment,
    Parts,
    Row,
    part_callables,
)

from asgi_observe.propagation import context_from_w3c

REQUEST_GROUP = "stack: one Starlette request (GET /users/42, sampled traceparent)"
PARTS_GROUP = "stack: the unavoidable parts (per batch of requests)"
EXTRACT_GROUP = "stack: extract the inbound context from ASGI headers"
BUDGET_S = 1e-3  # the design card: well under one millisecond per request and per span


@pytest.fixture(scope="module")
def env() -> Iterator[Environment]:
    environment = Environment()
    yield environment
    environment.close()


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@pytest.mark.benchmark(group=REQUEST_GROUP)
@pytest.mark.parametrize("row", [pytest.param(row, id=_slug(row.name)) for row in ROWS])
def bench_request(benchmark: Any, env: Environment, row: Row) -> None:
    propagate.set_global_textmap(row.textmap(env))
    view = row.environment(env)
    run(benchmark, row.factory(view), row.scope, view.flush)


@pytest.mark.benchmark(group=PARTS_GROUP)
@pytest.mark.parametrize("name", [pytest.param(name, id=_slug(name)) for name in ALL_PART_NAMES])
def bench_part(benchmark: Any, env: Environment, name: str) -> None:
    part = part_callables(Parts(env))[name]
    part()  # warm up outside the timing, like the request rows
    benchmark.extra_info["requests_per_round"] = BATCH
    benchmark.pedantic(part, rounds=benchmark_rounds(benchmark), iterations=1)


# --- header parsing as each middleware does it -----------------------------------------

EXTRACT_SCOPE = http_scope(
    headers=[
        (b"traceparent", SAMPLED),
        (b"tracestate", b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        (b"baggage", b"userId=alice,isProduction=false"),
    ]
)
_SLOTS = {b"traceparent": 0, b"tracestate": 1, b"baggage": 2}


def ours_extract(scope: dict[str, Any]) -> Any:
    """TracingMiddleware's path: one pass over the raw pairs, then the W3C parsers."""
    found: tuple[list[bytes], list[bytes], list[bytes]] = ([], [], [])
    for name, value in scope["headers"]:
        slot = _SLOTS.get(name)
        if slot is not None:
            found[slot].append(value)
    return context_from_w3c(*found)


@pytest.mark.benchmark(group=EXTRACT_GROUP)
def bench_extract_ours(benchmark: Any) -> None:
    context = benchmark(ours_extract, EXTRACT_SCOPE)
    assert trace.get_current_span(context).get_span_context().is_valid


@pytest.mark.benchmark(group=EXTRACT_GROUP)
def bench_extract_opentelemetry_asgi(benchmark: Any, env: Environment) -> None:
    """OpenTelemetry's ASGI middleware: its default propagators over its ASGI getter."""
    propagator = env.otel_default
    context = benchmark(propagator.extract, EXTRACT_SCOPE, getter=asgi_getter)
    assert trace.get_current_span(context).get_span_context().is_valid


# --- the budgets (these run in the normal test run) ------------------------------------


def _best_per_item(batch: Any, items: int, tries: int = 5) -> float:
    """Seconds per item of the fastest of `tries` calls: robust to a loaded machine."""
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        batch()
        best = min(best, time.perf_counter() - start)
    return best / items


def bench_budget_full_stack_request(env: Environment) -> None:
    """observe() with a sampled span, request id, metrics and Sentry: under 1 ms a request."""
    row = next(row for row in ROWS if row.name == OURS_FULL)
    propagate.set_global_textmap(row.textmap(env))
    view = row.environment(env)
    driver = Driver(row.factory(view), row.scope, view.flush)
    try:
        driver()  # first-request setup is not the budget
        per_request = _best_per_item(driver, BATCH)
    finally:
        driver.close()
    assert per_request < BUDGET_S, f"{per_request * 1e6:.0f} us per request"


def bench_budget_one_span(env: Environment) -> None:
    """Starting and ending one sampled span as the tracing layer does: under 1 ms."""
    parts = Parts(env)
    parts.span()
    per_span = _best_per_item(parts.span, BATCH)
    assert per_span < BUDGET_S, f"{per_span * 1e6:.0f} us per span"
