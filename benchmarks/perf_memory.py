"""Resident memory over 200,000 production-shaped requests through observe() (OTLP export).

Run: `.venv/bin/python benchmarks/perf_memory.py [--requests 200000] [--json FILE]`

The requests vary as traffic does: new trace and request ids every time, matched routes
with many parameter values, paths no route matches, unknown methods, several statuses.
Resident memory (from /proc/self/statm, after a collection) is sampled every
`--every` requests; the verdict compares the end with the end of the warm-up.
The metric series are counted in the registry: route templates and the overflow label
set keep them bounded whatever the paths are.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import http_scope
from opentelemetry import propagate
from prometheus_client import CollectorRegistry
from stack_rows import Environment, starlette_app

from asgi_observe.observe import observe

GROWTH_LIMIT_BYTES = 2 * 1024 * 1024  # "flat": less than 2 MiB between warm-up and end
_PAGE = os.sysconf("SC_PAGE_SIZE")
_METHODS = ("GET", "GET", "GET", "POST", "BREW")
_FLUSH_EVERY = 500  # BREW: an unknown method -> _OTHER


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def scopes(rng: random.Random) -> Any:
    """Endless varied request scopes (built outside the app, as a server would)."""
    while True:
        kind = rng.random()
        if kind < 0.6:
            path = f"/users/{rng.getrandbits(40)}"
        elif kind < 0.8:
            path = f"/other{rng.randrange(10)}/{rng.getrandbits(20)}"
        elif kind < 0.9:
            path = "/admin/a"
        else:
            path = f"/no/such/{rng.getrandbits(64):x}"  # 404: the `_unmatched` route
        traceparent = f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64) or 1:016x}-01"
        headers = [(b"traceparent", traceparent.encode())]
        if kind < 0.3:
            headers.append((b"x-request-id", f"{rng.getrandbits(128):032x}".encode()))
        yield http_scope(path, headers=headers, method=rng.choice(_METHODS))


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


def series_count(registry: CollectorRegistry) -> int:
    return sum(
        1
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name.endswith("_count")
    )


def measure(requests: int, warmup: int, every: int) -> dict[str, Any]:
    env = Environment()
    # Production-shaped: the spans are encoded and posted through OTLP/HTTP.
    exporting = env.exporting(ours=True)
    registry = CollectorRegistry()
    propagate.set_global_textmap(env.ours)
    app = observe(
        starlette_app(),
        configure=False,
        tracer_provider=exporting.provider,
        registry=registry,
        sentry=True,
    )
    rng = random.Random(8)
    source = scopes(rng)
    samples: list[tuple[int, int, int]] = []  # (requests done, resident bytes, series)

    async def drive(count: int) -> None:
        for done in range(1, count + 1):
            await app(next(source), _receive, _send)
            if done % _FLUSH_EVERY == 0:
                # A server's loop waits for sockets and lets the span processor's thread
                # run; this loop never waits, so it exports for it (no span is dropped).
                exporting.flush()

    loop = asyncio.new_event_loop()
    try:
        done = 0
        while done < requests:
            step = min(every, requests - done)
            loop.run_until_complete(drive(step))
            done += step
            gc.collect()
            samples.append((done, resident_bytes(), series_count(registry)))
        exporting.flush()
        received = exporting.receiver.stats() if exporting.receiver else {}
    finally:
        loop.close()
        env.close()
    after_warmup = next(rss for count, rss, _ in samples if count >= warmup)
    end = samples[-1][1]
    growth = end - after_warmup
    return {
        "requests": requests,
        "received": received,
        "warmup": warmup,
        "samples": [{"requests": c, "rss_bytes": r, "series": s} for c, r, s in samples],
        "rss_after_warmup_bytes": after_warmup,
        "rss_end_bytes": end,
        "growth_bytes": growth,
        "max_series": max(series for _, _, series in samples),
        "goal": {"growth_limit_bytes": GROWTH_LIMIT_BYTES, "holds": growth < GROWTH_LIMIT_BYTES},
    }


def table(result: dict[str, Any]) -> str:
    mib = 1024 * 1024
    goal = result["goal"]
    holds = "yes" if goal["holds"] else "**no**"
    return "\n".join(
        [
            f"| memory, {result['requests']:,} requests through observe() full, OTLP export "
            "| value |",
            "|---|---:|",
            f"| resident after {result['warmup']:,} requests (warm-up) | "
            f"{result['rss_after_warmup_bytes'] / mib:.1f} MiB |",
            f"| resident at the end | {result['rss_end_bytes'] / mib:.1f} MiB |",
            f"| growth after warm-up | {result['growth_bytes'] / mib:+.2f} MiB |",
            f"| duration series at most (route templates, `_unmatched`, `_OTHER`) | "
            f"{result['max_series']} |",
            f"| OTLP export requests (bytes) the receiver took | "
            f"{result['received'].get('requests', 0):,} "
            f"({result['received'].get('bytes', 0):,}) |",
            "",
            "| goal | measured | target | holds |",
            "|---|---:|---:|---|",
            f"| resident memory flat after warm-up | {result['growth_bytes'] / mib:+.2f} MiB | "
            f"< {goal['growth_limit_bytes'] / mib:.0f} MiB | {holds} |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--warmup", type=int, default=20_000)
    parser.add_argument("--every", type=int, default=10_000, help="requests between samples")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    result = measure(args.requests, args.warmup, args.every)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
