"""Hostile requests never stall the event loop for an innocent one (issue 13).

Hundreds of prefix-sharing cookies plus a large body that lands in frame locals made
every other request on the server wait about 2 s per hostile request: the request's
secret values were one alternation regex, run over all event text on the event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk
from sentry_receiver import Receiver, sentry_client, wait_for
from servers import serving

from asgi_observe.observe import observe
from asgi_observe.scrub.walk import REDUCED_NOTE

pytestmark = pytest.mark.e2e

PREFIX = "p" * 120
COOKIES = "; ".join(f"c{index}={PREFIX}{index:04d}" for index in range(400))
BODY = (PREFIX + "0") * 8000  # ~1 MB that shares the cookies' prefix everywhere
HOSTILE = 3
INNOCENT_BUDGET_S = 1.0

# observe() without touching process-wide state other tests read: no configure(), no
# global propagator, no record factory.
QUIET: dict[str, Any] = {"configure": False, "install_propagator": False, "log_correlation": False}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/hostile":
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks).decode()
        text = body + " "  # another large local, as parsing would leave
        raise ValueError(f"rejected {len(text)} bytes")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def test_an_innocent_request_is_served_while_hostile_events_are_scrubbed(
    receiver: Receiver,
) -> None:
    with sentry_client(receiver.dsn):
        layered = observe(app, **QUIET, metrics=False, sentry=True)
        with serving(layered, "uvicorn-httptools") as base:
            with httpx.Client(base_url=base, timeout=30) as client:
                assert 200 == client.get("/innocent").status_code  # warm
            statuses: list[int] = []

            def hostile() -> None:
                with httpx.Client(base_url=base, timeout=60) as client:
                    response = client.post(
                        "/hostile", headers={"cookie": COOKIES}, content=BODY.encode()
                    )
                    statuses.append(response.status_code)

            threads = [threading.Thread(target=hostile) for _ in range(HOSTILE)]
            for thread in threads:
                thread.start()
            latencies = []
            with httpx.Client(base_url=base, timeout=30) as client:
                while any(thread.is_alive() for thread in threads):
                    start = time.perf_counter()
                    assert 200 == client.get("/innocent").status_code
                    latencies.append(time.perf_counter() - start)
                    time.sleep(0.02)
            for thread in threads:
                thread.join()
        sentry_sdk.flush(timeout=10)
        wait_for(lambda: len(receiver.events) >= HOSTILE, timeout=10)
    assert [500] * HOSTILE == statuses
    assert latencies, "the hostile requests finished before any innocent one was timed"
    assert max(latencies) < INNOCENT_BUDGET_S, sorted(latencies)[-5:]
    assert HOSTILE == len(receiver.events)
    raw = receiver.raw.decode("utf-8", "replace")
    assert PREFIX + "0007" not in raw  # sent scrubbed, or reduced: never unscrubbed
    print(
        f"innocent latency max {max(latencies):.3f}s over {len(latencies)} requests;",
        "reduced events:",
        sum(REDUCED_NOTE in str(event) for event in receiver.events),
    )
