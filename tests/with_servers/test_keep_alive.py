"""A raising app costs exactly one 500 on a keep-alive connection, under real servers.

Issue 13: observe()'s request-id layer answered the 500 without `connection: close`
and re-raised; the server then closed the socket, and a keep-alive client lost the next,
unrelated request it sent on it (17-39 of 100 on uvicorn).
"""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from servers import SERVERS, serving

from asgi_observe.logs.request_id import RequestIdMiddleware
from asgi_observe.observe import observe

pytestmark = pytest.mark.e2e

ROUNDS = 40

# observe() without touching process-wide state other tests read: no configure(), no
# global propagator, no record factory.
QUIET: dict[str, Any] = {"configure": False, "install_propagator": False, "log_correlation": False}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/boom":
        raise RuntimeError("the app failed")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def starlette_app() -> Any:
    """Starlette's ServerErrorMiddleware sends its own 500 in full, then re-raises."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def boom(request: Any) -> Any:
        raise RuntimeError("the app failed")

    async def fine(request: Any) -> Any:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/boom", boom), Route("/fine", fine)])


def layered(kind: str) -> Any:
    if kind == "starlette":
        return observe(starlette_app(), **QUIET, metrics=False, sentry=False)
    if kind == "observe":
        return observe(app, **QUIET, metrics=False, sentry=False)
    return RequestIdMiddleware(app, error_response=True)


@pytest.mark.parametrize("kind", ["observe", "request_id", "starlette"])
@pytest.mark.parametrize("server", SERVERS)
def test_follow_ups_on_a_keep_alive_client_are_all_served(server: str, kind: str) -> None:
    statuses = []
    with serving(layered(kind), server) as base:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(base_url=base, limits=limits, timeout=5) as client:
            for _ in range(ROUNDS):
                statuses.append(client.get("/boom").status_code)
                statuses.append(client.get("/fine").status_code)
    assert [500, 200] * ROUNDS == statuses


@pytest.mark.parametrize("server", SERVERS)
def test_the_500_tells_a_raw_socket_client_to_reconnect(server: str) -> None:
    with serving(layered("observe"), server) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
            response = _read_response(sock)
    head = response.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 500")
    assert b"connection: close" in head
    assert 1 == head.count(b"http/1.1 ")


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"Internal Server Error"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_the_logged_error_after_starlettes_500_gives_no_second_event() -> None:
    """Without sentry-sdk's DedupeIntegration, the error log of an exception our request
    already reported would be a second, unscrubbed event (through the logging
    integration, outside the request)."""
    import sentry_sdk
    from sentry_receiver import Receiver, sentry_client, wait_for
    from sentry_sdk.integrations.dedupe import DedupeIntegration

    secret = "-".join(["dedupe", "bearer", "77"])
    receiver = Receiver().start()
    try:
        with sentry_client(receiver.dsn, disabled_integrations=[DedupeIntegration()]):
            app = observe(starlette_app(), **QUIET, metrics=False, sentry=True)
            with serving(app, "uvicorn-h11") as base:
                headers = {"authorization": f"Bearer {secret}"}
                response = httpx.get(base + "/boom", headers=headers, timeout=5)
            sentry_sdk.flush(timeout=5)
            wait_for(lambda: bool(receiver.events), timeout=3)
    finally:
        receiver.stop()
    assert (500, 1) == (response.status_code, len(receiver.events))
    assert secret not in receiver.raw.decode("utf-8", "replace")
