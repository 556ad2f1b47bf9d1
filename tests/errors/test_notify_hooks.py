"""The other ways in: failures that are not exceptions (the MCP hook), websockets, ignored
exception types, the log handler's loop guard."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from chat_receiver import ChatReceiver, chat_receiver
from notify_helpers import clean_globals, notifier_for

from asgi_observe._core.mcp_facts import McpFacts
from asgi_observe._core.record import record_of
from asgi_observe.errors.notify import (
    Notifier,
    NotifyLogHandler,
    NotifyMiddleware,
    NotifyOptions,
    WebhookDestination,
)


@pytest.fixture(autouse=True)
def _globals() -> Iterator[None]:
    with clean_globals():
        yield


@pytest.fixture
def receiver() -> Iterator[ChatReceiver]:
    with chat_receiver() as found:
        yield found


def hook_notifier(receiver: ChatReceiver, **options: Any) -> Notifier:
    return Notifier([WebhookDestination(f"{receiver.url}/hook")], options=NotifyOptions(**options))


def test_notify_failure_is_deduplicated_by_kind_title_and_place(receiver: ChatReceiver) -> None:
    notifier = hook_notifier(receiver)
    sent = [
        notifier.notify_failure("mcp", "tool call failed: search", "timeout", where="search"),
        notifier.notify_failure("mcp", "tool call failed: search", "timeout again", where="search"),
        notifier.notify_failure("mcp", "tool call failed: fetch", "refused", where="fetch"),
    ]
    assert notifier.force_flush(5000)
    assert [True, False, True] == sent
    hooks = receiver.bodies("/hook")
    assert [
        ("mcp", "tool call failed: search", 0),
        ("mcp", "tool call failed: fetch", 0),
        ("repeats", "tool call failed: search", 1),
    ] == [(h["kind"], h["title"], h["repeats"]) for h in hooks]


async def test_a_websocket_error_is_notified_without_an_http_status(receiver: ChatReceiver) -> None:
    notifier = hook_notifier(receiver)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        raise ConnectionError("feed broke")

    messages = iter([{"type": "websocket.connect"}])

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        pass

    scope = {"type": "websocket", "path": "/feed", "headers": [], "query_string": b""}
    middleware = NotifyMiddleware(app, notifier=notifier, route_resolver=lambda s: "/feed")
    with pytest.raises(ConnectionError):
        await middleware(scope, receive, send)
    assert notifier.force_flush(5000)
    [hook] = receiver.bodies("/hook")
    assert ("ConnectionError", "WEBSOCKET", "/feed", None) == (
        hook["title"],
        hook["request"]["method"],
        hook["request"]["route"],
        hook["request"]["status"],
    )


def test_ignored_types_and_http_4xx_exceptions_are_never_notified(receiver: ChatReceiver) -> None:
    class NotFoundHTTPException(Exception):
        status_code = 404

    class Expected(Exception):
        pass

    notifier = Notifier([WebhookDestination(f"{receiver.url}/hook")], ignore_exceptions=[Expected])
    assert [False, False, True] == [
        notifier.notify_exception(NotFoundHTTPException()),
        notifier.notify_exception(Expected()),
        notifier.notify_exception(RuntimeError()),
    ]


def test_our_own_log_records_never_cause_a_notification(receiver: ChatReceiver) -> None:
    notifier = notifier_for(receiver, only="slack", events=frozenset({"logs"}))
    handler = NotifyLogHandler(notifier)
    logger = logging.getLogger("asgi_observe.errors.notify")
    logger.addHandler(handler)
    try:
        logger.error("a notification was not delivered")
    finally:
        logger.removeHandler(handler)
    assert notifier.force_flush(2000)
    assert [] == receiver.posted


def test_the_log_handler_is_installed_once_per_logger(receiver: ChatReceiver) -> None:
    from asgi_observe.errors.notify import install_log_handler

    logger = logging.getLogger("tests.notify.install")
    first, second = notifier_for(receiver), notifier_for(receiver)
    try:
        assert install_log_handler(first, logger) is install_log_handler(first, logger)
        install_log_handler(second, logger)
        assert [second] == [h.notifier for h in logger.handlers if isinstance(h, NotifyLogHandler)]
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("error_type", "notified"),
    [("tool_error", True), ("-32602", True), ("404", False), ("_invalid", False), (None, False)],
)
async def test_an_mcp_error_answer_in_the_record_notifies_with_the_mcp_event(
    receiver: ChatReceiver, error_type: str | None, notified: bool
) -> None:
    """isError and JSON-RPC error answers notify; HTTP statuses are the HTTP paths' own."""
    notifier = hook_notifier(receiver, events=frozenset({"exceptions", "mcp"}))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        record = record_of(scope)
        assert record is not None
        facts = record.mcp = McpFacts()
        facts.method, facts.tool_name, facts.error_type = "tools/call", "search", error_type
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    middleware = NotifyMiddleware(app, notifier=notifier, route_resolver=lambda s: "/mcp")

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": [], "query_string": b""}
    await middleware(scope, receive, send)
    assert notifier.force_flush(5000)
    expected = [("mcp", "MCP tools/call search failed", f"answered {error_type}")]
    assert (expected if notified else []) == [
        (hook["kind"], hook["title"], hook["message"]) for hook in receiver.bodies("/hook")
    ]


async def test_without_the_mcp_event_an_error_answer_is_not_notified(
    receiver: ChatReceiver,
) -> None:
    notifier = hook_notifier(receiver)  # the default events: exceptions only

    async def app(scope: Any, receive: Any, send: Any) -> None:
        record = record_of(scope)
        assert record is not None
        facts = record.mcp = McpFacts()
        facts.method, facts.tool_name, facts.error_type = "tools/call", "search", "tool_error"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    middleware = NotifyMiddleware(app, notifier=notifier, route_resolver=lambda s: "/mcp")

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": [], "query_string": b""}
    await middleware(scope, receive, send)
    assert notifier.force_flush(5000)
    assert [] == receiver.bodies("/hook")
