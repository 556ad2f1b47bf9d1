"""A tools/call round trip through the real `mcp` SDK server: bare, observe() without MCP
awareness, and observe() with it; and a non-MCP path with MCP awareness on and off.

Run: `.venv/bin/python -m pytest benchmarks/bench_mcp.py --benchmark-enable` (times per
batch of `BATCH` calls), or `.venv/bin/python benchmarks/bench_mcp.py` for the ratios of
one interleaved run, the figures quoted in docs/performance.md. The issue 15 goals: MCP
awareness adds at most 3% and at most 30 us to a bare tools/call, and nothing to a path
that is not an MCP endpoint.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness import benchmark_rounds, http_scope

BATCH = 50
GROUP_CALL = "mcp: one tools/call round trip (mcp 2.x server, 2026-07-28 JSON answer)"
GROUP_OTHER = "mcp: a request to a path that is not an MCP endpoint"

BODY = (
    b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","arguments":'
    b'{"a":1,"b":2},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
    b'"io.modelcontextprotocol/clientInfo":{"name":"mcp","version":"0.1.0"},'
    b'"io.modelcontextprotocol/clientCapabilities":{}}}}'
)
CALL_SCOPE = http_scope(
    "/mcp",
    method="POST",
    headers=[
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"mcp-protocol-version", b"2026-07-28"),
        (b"mcp-method", b"tools/call"),
        (b"mcp-name", b"add"),
        (b"content-length", str(len(BODY)).encode()),
    ],
)
OTHER_SCOPE = http_scope("/not-mcp")


def server_app() -> Any:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench")
    server.middleware.clear()  # the SDK's own spans are not what is measured here

    @server.tool()
    async def add(a: int, b: int) -> int:
        return a + b

    return server.streamable_http_app()


def observed(app: Any, *, mcp: bool) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client import CollectorRegistry

    from asgi_observe import observe

    return observe(
        app,
        configure=False,
        tracer_provider=TracerProvider(),  # sampled spans, exported nowhere
        registry=CollectorRegistry(),
        log_correlation=False,
        mcp_paths=None if mcp else [],
        mcp_names=["add"],
    )


class Served:
    """One app with its lifespan running in its own loop; `batch(scope)()` runs BATCH calls."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._startup: asyncio.Queue[dict[str, Any]] | None = None
        self._lifespan: asyncio.Future[Any] | None = None
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._startup = incoming
        self._lifespan = asyncio.ensure_future(
            self.app({"type": "lifespan"}, incoming.get, answers.put)
        )
        await incoming.put({"type": "lifespan.startup"})
        assert "lifespan.startup.complete" == (await answers.get())["type"]

    def batch(self, scope: dict[str, Any], body: bytes = b"") -> Callable[[], None]:
        app = self.app
        statuses: list[int] = []

        async def one() -> None:
            sent = False

            async def receive() -> dict[str, Any]:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await asyncio.sleep(3600)  # the client stays connected
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            await app(dict(scope), receive, send)

        async def calls() -> None:
            for _ in range(BATCH):
                await one()

        def run() -> None:
            statuses.clear()
            self.loop.run_until_complete(calls())
            assert len(statuses) == BATCH, statuses

        return run

    def close(self) -> None:
        async def stop() -> None:
            assert self._startup is not None and self._lifespan is not None
            await self._startup.put({"type": "lifespan.shutdown"})
            await asyncio.wait_for(self._lifespan, 10)

        self.loop.run_until_complete(stop())
        self.loop.close()


ROWS: dict[str, Callable[[Any], Any]] = {
    "bare": lambda app: app,
    "observe() without MCP awareness": lambda app: observed(app, mcp=False),
    "observe() with MCP awareness": lambda app: observed(app, mcp=True),
}


@pytest.fixture(scope="module")
def served() -> Iterator[dict[str, Served]]:
    pytest.importorskip("mcp")
    apps = {name: Served(factory(server_app())) for name, factory in ROWS.items()}
    yield apps
    for app in apps.values():
        app.close()


@pytest.mark.benchmark(group=GROUP_CALL)
@pytest.mark.parametrize("row", list(ROWS))
def bench_tools_call(benchmark: Any, served: dict[str, Served], row: str) -> None:
    batch = served[row].batch(CALL_SCOPE, BODY)
    batch()  # warm up outside the timing
    benchmark.extra_info["requests_per_round"] = BATCH
    benchmark.pedantic(batch, rounds=benchmark_rounds(benchmark), iterations=1)


@pytest.mark.benchmark(group=GROUP_OTHER)
@pytest.mark.parametrize("row", list(ROWS)[1:])
def bench_other_path(benchmark: Any, served: dict[str, Served], row: str) -> None:
    batch = served[row].batch(OTHER_SCOPE)
    batch()
    benchmark.extra_info["requests_per_round"] = BATCH
    benchmark.pedantic(batch, rounds=benchmark_rounds(benchmark), iterations=1)


# --- the MCP layer alone, on the SDK's recorded messages ---------------------------------

ANSWER = (
    b'{"jsonrpc":"2.0","id":3,"result":{"content":[{"text":"3","type":"text"}],'
    b'"isError":false,"resultType":"complete","structuredContent":{"result":3},'
    b'"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"bench","version":""}}}}'
)
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"210")],
}
_BODY = {"type": "http.response.body", "body": ANSWER}
_REQUEST = {"type": "http.request", "body": BODY, "more_body": False}


async def replay_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """What the SDK's app does on the wire for one tools/call, without the SDK's work."""
    await receive()
    await send(_START)
    await send(_BODY)


def layer_batches() -> dict[str, Callable[[], None]]:
    from prometheus_client import CollectorRegistry

    from asgi_observe._core.record import ensure_record
    from asgi_observe.mcp import McpMiddleware

    loop = asyncio.new_event_loop()

    async def receive() -> dict[str, Any]:
        return _REQUEST

    async def send(message: Any) -> None:
        return None

    def batch(app: Any) -> Callable[[], None]:
        async def calls() -> None:
            for _ in range(1000):
                # Inside observe() the outer layers made the record already.
                scope, _record = ensure_record(dict(CALL_SCOPE))
                await app(scope, receive, send)

        return lambda: loop.run_until_complete(calls())

    layer = McpMiddleware(replay_app, paths=["/mcp"], registry=CollectorRegistry(), names=["add"])
    return {"replay bare": batch(replay_app), "replay McpMiddleware": batch(layer)}


def cpu_interleaved(batches: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Median CPU seconds per call of each batch, rows shuffled every round.

    CPU time of this process, not wall time: on a shared, loaded machine waiting for a
    core is not our cost (docs/performance.md).
    """
    rng = random.Random(0)
    names = list(batches)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            start = time.process_time()
            batches[name]()
            samples[name].append(time.process_time() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def main(rounds: int = 40) -> None:
    """One interleaved run; prints per-call CPU medians and the goals' ratios."""
    apps = {name: Served(factory(server_app())) for name, factory in ROWS.items()}
    try:
        batches = {f"call {name}": app.batch(CALL_SCOPE, BODY) for name, app in apps.items()}
        batches.update(
            {f"other {name}": app.batch(OTHER_SCOPE) for name, app in list(apps.items())[1:]}
        )
        for batch in batches.values():
            batch()
        medians = cpu_interleaved(batches, rounds)
    finally:
        for app in apps.values():
            app.close()
    us = {name: value / BATCH * 1e6 for name, value in medians.items()}
    layer = {
        name: value / 1000 * 1e6 for name, value in cpu_interleaved(layer_batches(), rounds).items()
    }
    us.update(layer)
    for name, value in us.items():
        print(f"{name:45s} {value:9.1f} us")
    bare = us["call bare"]
    plain = us["call observe() without MCP awareness"]
    aware = us["call observe() with MCP awareness"]
    added = us["replay McpMiddleware"] - us["replay bare"]
    print(f"round trip, MCP awareness on / off: {aware / plain:.3f}x ({aware - plain:+.1f} us)")
    print(f"the MCP layer alone: {added:.1f} us a call = {added / bare:.2%} of a bare call")
    other = us["other observe() with MCP awareness"] / us["other observe() without MCP awareness"]
    print(f"non-MCP path, awareness on / off: {other:.3f}x")


# --- instructions: the load-independent second opinion ----------------------------------

COUNT_WARM_UP = 3  # batches before the counted ones: lazy imports, caches, the SDK's session


def row_batches(name: str) -> tuple[Callable[[], None], Callable[[], None], int]:
    """`(batch, close, calls per batch)` of one row of `main()`'s table, built alone."""
    kind, _, row = name.partition(" ")
    if kind == "replay":
        return layer_batches()[name], lambda: None, 1000
    served = Served(ROWS[row](server_app()))
    scope, body = (CALL_SCOPE, BODY) if kind == "call" else (OTHER_SCOPE, b"")
    return served.batch(scope, body), served.close, BATCH


def count_child(name: str, batches: int) -> None:
    """What valgrind runs: warm up, then `batches` batches of the row `name`."""
    import gc
    import logging

    logging.disable(logging.CRITICAL)  # the SDK's session manager logs at INFO
    batch, close, _ = row_batches(name)
    try:
        for _ in range(COUNT_WARM_UP):
            batch()
        gc.collect()
        for _ in range(batches):
            batch()
    finally:
        close()


COUNT_ROWS = (
    "call bare",
    "call observe() without MCP awareness",
    "call observe() with MCP awareness",
    "other observe() without MCP awareness",
    "other observe() with MCP awareness",
    "replay bare",
    "replay McpMiddleware",
)


def count_main(batches: int = 4) -> dict[str, float]:
    """Instructions per call of every row (callgrind; each row in two processes of its own)."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from perf_instructions import count

    here = str(Path(__file__).resolve())

    def total(name: str, counted: int) -> int:
        return count([sys.executable, here, "--count-child", name, str(counted)])

    with ThreadPoolExecutor(2) as pool:
        runs = {
            name: (pool.submit(total, name, 0), pool.submit(total, name, batches))
            for name in COUNT_ROWS
        }
        per_call = {
            name: (measured.result() - base.result())
            / (batches * (1000 if name.startswith("replay") else BATCH))
            for name, (base, measured) in runs.items()
        }
    for name, value in per_call.items():
        print(f"{name:45s} {value / 1000:9.1f}k instructions")
    bare = per_call["call bare"]
    added = (
        per_call["call observe() with MCP awareness"]
        - per_call["call observe() without MCP awareness"]
    )
    layer = per_call["replay McpMiddleware"] - per_call["replay bare"]
    other = (
        per_call["other observe() with MCP awareness"]
        / per_call["other observe() without MCP awareness"]
    )
    print(f"round trip, MCP awareness adds {added / 1000:.1f}k = {added / bare:.2%} of a bare call")
    print(f"the MCP layer alone: {layer / 1000:.1f}k = {layer / bare:.2%} of a bare call")
    print(f"non-MCP path, awareness on / off: {other:.4f}x")
    return per_call


if __name__ == "__main__":
    if sys.argv[1:2] == ["--count-child"]:
        count_child(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["--instructions"]:
        count_main(int(sys.argv[2]) if len(sys.argv) > 2 else 4)
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
