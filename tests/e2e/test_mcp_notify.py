"""Error notifications from real MCP servers of both SDKs under uvicorn, called by their
own clients: a raising tool notifies once with its traceback; isError results and
JSON-RPC error answers notify only with the ``mcp`` event (the Sentry policy)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import fastmcp.client  # noqa: F401 - imported here, not deep in a test (CPython 3.11 AST bug)
import pytest
from chat_receiver import TOKEN, ChatReceiver, chat_receiver
from e2e_harness import LOOPBACK, free_port
from mcp_servers import fastmcp_app, mcp_sdk_app
from notify_helpers import HEADER_SECRET, clean_globals
from prometheus_client import CollectorRegistry

from asgi_observe import observe
from asgi_observe.errors.notify import (
    Notifier,
    NotifyOptions,
    TelegramDestination,
    WebhookDestination,
)

pytestmark = [pytest.mark.e2e]

SDKS = ["mcp", "fastmcp"]


@pytest.fixture(autouse=True)
def _globals() -> Iterator[None]:
    import logging

    from asgi_observe.errors.notify.mcp_tools import MCP_SDK_LOGGERS, McpToolErrorHandler

    with clean_globals():
        yield
    for name in MCP_SDK_LOGGERS:  # observe() put them there, for a notifier now closed
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, McpToolErrorHandler):
                logger.removeHandler(handler)


@pytest.fixture
def receiver() -> Iterator[ChatReceiver]:
    with chat_receiver() as found:
        yield found


async def call_tools(sdk: str, url: str) -> list[bool]:
    """add, soft_fail, boom twice, an unknown tool: each call's isError."""
    calls: list[tuple[str, dict[str, Any]]] = [
        ("add", {"a": 1, "b": 2}),
        ("soft_fail", {}),
        ("boom", {}),
        ("boom", {}),
        ("nope", {}),
    ]
    headers = {"authorization": f"Bearer {HEADER_SECRET}"}
    if sdk == "fastmcp":
        from fastmcp import Client as FastClient
        from fastmcp.client.transports import StreamableHttpTransport

        async with FastClient(StreamableHttpTransport(url, headers=headers)) as client:
            return [
                (await client.call_tool(name, args, raise_on_error=False)).is_error
                for name, args in calls
            ]
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http_client = httpx2.AsyncClient(headers=headers, timeout=30)
    async with http_client, Client(streamable_http_client(url, http_client=http_client)) as c:
        return [(await c.call_tool(name, args)).is_error for name, args in calls]


def serve_and_call(sdk: str, notifier: Notifier) -> list[bool]:
    import uvicorn

    app = fastmcp_app() if sdk == "fastmcp" else mcp_sdk_app()
    observed = observe(
        app, configure=False, install_propagator=False, registry=CollectorRegistry(),
        sentry=False, notify=notifier,
    )  # fmt: skip

    async def session() -> list[bool]:
        port = free_port()
        config = uvicorn.Config(
            observed, host=LOOPBACK, port=port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        task = asyncio.ensure_future(server.serve())
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        try:
            return await asyncio.wait_for(call_tools(sdk, f"http://{LOOPBACK}:{port}/mcp"), 60)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 15)

    return asyncio.run(session())


def notifier_for(receiver: ChatReceiver, **options: Any) -> Notifier:
    targets = [
        WebhookDestination(f"{receiver.url}/hook"),
        TelegramDestination(TOKEN, -100123, api_url=receiver.url),
    ]
    return Notifier(targets, options=NotifyOptions(retries=1, timeout=2.0, **options))


@pytest.mark.parametrize("sdk", SDKS)
def test_a_raising_tool_notifies_once_with_its_traceback(sdk: str, receiver: ChatReceiver) -> None:
    notifier = notifier_for(receiver)
    try:
        assert [False, True, True, True, True] == serve_and_call(sdk, notifier)
        assert notifier.force_flush(5000)
    finally:
        notifier.close()
    hooks = receiver.bodies("/hook")
    # One message for boom, then its repeat at the flush; isError answers stay quiet.
    assert [("exception", "RuntimeError", 0), ("repeats", "RuntimeError", 1)] == [
        (h["kind"], h["title"], h["repeats"]) for h in hooks
    ]
    first = hooks[0]
    assert "the tool exploded" == first["message"]
    assert first["frames"][-1]["function"].endswith("boom")  # the qualified name
    assert first["frames"][-1]["filename"].endswith("mcp_servers.py")
    assert "tools/call boom" == first["context"]["mcp"]
    # The tool runs before the answer starts: no status is known yet.
    assert ("POST", "/mcp") == (first["request"]["method"], first["request"]["route"])
    assert first["request"]["request_id"]
    assert 2 == len(receiver.bodies("sendMessage"))
    for posted in receiver.posted:
        assert HEADER_SECRET not in repr(posted.body)
        assert TOKEN not in repr(posted.body)


@pytest.mark.parametrize("sdk", SDKS)
def test_error_answers_notify_with_the_mcp_event(sdk: str, receiver: ChatReceiver) -> None:
    notifier = notifier_for(receiver, events=frozenset({"exceptions", "mcp"}))
    try:
        serve_and_call(sdk, notifier)
        assert notifier.force_flush(5000)
    finally:
        notifier.close()
    first_messages = [
        (h["kind"], h["title"]) for h in receiver.bodies("/hook") if h["kind"] != "repeats"
    ]
    # boom notifies as its exception only, never a second time as an isError answer.
    assert [
        ("mcp", "MCP tools/call soft_fail failed"),
        ("exception", "RuntimeError"),
        ("mcp", "MCP tools/call nope failed"),
    ] == first_messages


@pytest.mark.parametrize("sdk", SDKS)
def test_with_the_logs_event_the_sdks_lines_add_nothing(sdk: str, receiver: ChatReceiver) -> None:
    """The SDK's log of boom is notified once; fastmcp's isError line is the mcp event's."""
    import logging

    from asgi_observe.errors.notify import install_log_handler

    notifier = notifier_for(receiver, events=frozenset({"exceptions", "logs"}))
    install_log_handler(notifier)  # observe() does this for the "logs" event
    # As with FASTMCP_LOG_ENABLED=false: fastmcp's lines reach the root logger.
    sdk_logger = logging.getLogger("fastmcp")
    propagate, sdk_logger.propagate = sdk_logger.propagate, True
    try:
        serve_and_call(sdk, notifier)
        assert notifier.force_flush(5000)
    finally:
        sdk_logger.propagate = propagate
        notifier.close()
    assert [("exception", "RuntimeError")] == [
        (h["kind"], h["title"]) for h in receiver.bodies("/hook") if h["kind"] != "repeats"
    ]
