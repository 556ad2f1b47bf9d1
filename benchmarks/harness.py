"""Drive ASGI apps in-process for benchmarks: N requests per timed call, one event loop.

Timing one request per call would mostly time `run_until_complete`; a batch of requests in
one coroutine keeps the loop's own cost out of the per-request figure, and the bare app is
measured the same way so the ratios hold.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

BATCH = 200

_REQUEST = {"type": "http.request", "body": b"", "more_body": False}


def http_scope(
    path: str = "/users/42", headers: Iterable[tuple[bytes, bytes]] = (), method: str = "GET"
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"bench/1.0"),
            (b"accept", b"*/*"),
            *headers,
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The bare app: one start and one final body message."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _receive() -> dict[str, Any]:
    return _REQUEST


async def _send(message: Any) -> None:
    return None


class Driver:
    """Runs `BATCH` requests through an app per call; one loop for the whole benchmark."""

    def __init__(
        self,
        app: Any,
        scope: dict[str, Any] | None = None,
        after: Callable[[], Any] | None = None,
    ) -> None:
        self.app = app
        self.scope = scope if scope is not None else http_scope()
        self.loop = asyncio.new_event_loop()
        # Runs inside the timing after each batch: `Environment.flush` exports the
        # batch's spans there, so each row pays for its own spans (see stack_rows.py).
        self.after = after

    async def _batch(self) -> None:
        app, scope = self.app, self.scope
        for _ in range(BATCH):
            # Servers hand every request a fresh scope; frameworks write into it.
            await app(dict(scope), _receive, _send)

    def __call__(self) -> None:
        self.loop.run_until_complete(self._batch())
        if self.after is not None:
            self.after()

    def close(self) -> None:
        self.loop.close()


def run(
    benchmark: Any,
    app: Any,
    scope: dict[str, Any] | None = None,
    after: Callable[[], Any] | None = None,
) -> Driver:
    """Benchmark `app`; per-request time is the reported time divided by BATCH."""
    driver = Driver(app, scope, after)
    driver()  # warm caches, lazy imports and first-request setup outside the timing
    try:
        benchmark.extra_info["requests_per_round"] = BATCH
        benchmark.pedantic(driver, rounds=benchmark_rounds(benchmark), iterations=1)
    finally:
        driver.close()
    return driver


def benchmark_rounds(benchmark: Any) -> int:
    return 1 if getattr(benchmark, "disabled", False) else 30


def per_request_us(stats_mean_s: float) -> float:
    return stats_mean_s / BATCH * 1e6


Factory = Callable[[Any], Any]


def interleaved(
    batches: dict[str, Callable[[], Any]], rounds: int, *, seed: int = 0
) -> dict[str, list[float]]:
    """Seconds per call of each batch, `rounds` samples each, rows shuffled every round.

    Load from other processes then falls on every row alike, so ratios between rows hold
    on a busy machine even when absolute figures drift.
    """
    rng = random.Random(seed)
    names = list(batches)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            start = time.perf_counter()
            batches[name]()
            samples[name].append(time.perf_counter() - start)
    return samples
