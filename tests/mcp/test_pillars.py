"""How the other pillars read the MCP facts: the span's parent and attributes, the SDK's
_meta extraction through our propagator, log fields, opt-in MCP spans and Sentry events,
and finding the SDKs' endpoints."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from asgi_driver import Recorder, http_scope
from hypothesis import given
from hypothesis import strategies as st
from mcp_apps import json_answer, mcp_app
from prometheus_client import CollectorRegistry

from asgi_observe._core.mcp_facts import McpFacts, current_mcp
from asgi_observe.logs.correlation import JsonFormatter, add_request_context
from asgi_observe.mcp import McpMiddleware, find_mcp_paths
from asgi_observe.propagation import w3c_propagator
from asgi_observe.tracing.middleware import TracingMiddleware

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
META_PARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
HEADER_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def call(meta: dict[str, str] | None = None, name: str = "add") -> bytes:
    params: dict[str, Any] = {"name": name, "arguments": {}}
    if meta is not None:
        params["_meta"] = meta
    return json.dumps(
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params}
    ).encode()


def answer(is_error: bool = False) -> Any:
    return json_answer({"jsonrpc": "2.0", "id": 5, "result": {"isError": is_error}})


def stack(app: Any, capture: Any, **options: Any) -> Any:
    inner = McpMiddleware(app, paths=["/mcp"], registry=CollectorRegistry(), **options)
    return TracingMiddleware(
        inner,
        tracer_provider=capture.provider,
        propagator=w3c_propagator(),
        body_parent_paths=["/mcp"],
    )


async def post(app: Any, body: bytes, headers: Any = (), path: str = "/mcp") -> Recorder:
    recorder = Recorder([{"type": "http.request", "body": body}])
    await app(
        http_scope(path, method="POST", headers=list(headers)), recorder.receive, recorder.send
    )
    return recorder


def server_span(capture: Any) -> Any:
    [span] = [s for s in capture.spans if s.name.startswith("POST")]
    return span


# --- the HTTP span ---------------------------------------------------------------------


async def test_without_a_header_the_span_continues_the_meta_context(span_capture: Any) -> None:
    await post(stack(mcp_app(answer()), span_capture), call({"traceparent": META_PARENT}))
    span = server_span(span_capture)
    assert TRACE_ID == format(span.context.trace_id, "032x")
    assert 0xB7AD6B7169203331 == span.parent.span_id
    assert "add" == span.attributes["gen_ai.tool.name"]


async def test_a_traceparent_header_wins_over_meta(span_capture: Any) -> None:
    app = stack(mcp_app(answer()), span_capture)
    await post(app, call({"traceparent": META_PARENT}), [(b"traceparent", HEADER_PARENT.encode())])
    assert 0x00F067AA0BA902B7 == server_span(span_capture).parent.span_id


async def test_without_any_context_the_span_is_a_root_and_times_the_whole_request(
    span_capture: Any,
) -> None:
    await post(stack(mcp_app(answer(is_error=True)), span_capture), call())
    span = server_span(span_capture)
    assert span.parent is None
    assert ("tool_error", 200) == (
        span.attributes["error.type"],
        span.attributes["http.response.status_code"],
    )


async def test_an_app_that_never_reads_the_body_still_gets_its_span(span_capture: Any) -> None:
    await post(stack(mcp_app(answer(), read_body=False), span_capture), call())
    assert "tools/call" != server_span(span_capture).attributes.get("mcp.method.name")
    assert 200 == server_span(span_capture).attributes["http.response.status_code"]


async def test_other_paths_start_their_span_at_once(span_capture: Any) -> None:
    seen: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        from opentelemetry import trace

        seen.append(trace.get_current_span().get_span_context().is_valid)
        for message in answer()(b""):
            await send(message)

    await post(stack(app, span_capture), call(), path="/other")
    assert [True] == seen


async def test_the_sdk_extracting_its_meta_gets_our_span_as_parent(span_capture: Any) -> None:
    """What both SDKs do inside the handler: extract params._meta through the global textmap."""
    extracted: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        from opentelemetry import trace

        await receive()
        for carrier in ({"traceparent": META_PARENT}, {"traceparent": HEADER_PARENT}):
            context = w3c_propagator().extract(carrier)
            extracted.append(trace.get_current_span(context).get_span_context().span_id)
        for message in answer()(b""):
            await send(message)

    await post(stack(app, span_capture), call({"traceparent": META_PARENT}))
    ours = server_span(span_capture).context.span_id
    # This request's own _meta nests under our span; any other carrier extracts as usual.
    assert [ours, 0x00F067AA0BA902B7] == extracted


async def test_outside_an_mcp_request_extraction_is_unchanged() -> None:
    from opentelemetry import trace

    context = w3c_propagator().extract({"traceparent": META_PARENT})
    assert 0xB7AD6B7169203331 == trace.get_current_span(context).get_span_context().span_id


# --- our own MCP spans ------------------------------------------------------------------


async def test_mcp_spans_true_emits_one_child_span_per_request(span_capture: Any) -> None:
    app = stack(
        mcp_app(answer(is_error=True)),
        span_capture,
        spans=True,
        tracer_provider=span_capture.provider,
    )
    await post(app, call())
    http = server_span(span_capture)
    [own] = [s for s in span_capture.spans if s.name == "tools/call add"]
    assert http.context.span_id == own.parent.span_id
    assert ("tools/call", "add", "5", "tool_error") == (
        own.attributes["mcp.method.name"],
        own.attributes["gen_ai.tool.name"],
        own.attributes["jsonrpc.request.id"],
        own.attributes["error.type"],
    )


async def test_no_mcp_spans_by_default(span_capture: Any) -> None:
    await post(stack(mcp_app(answer()), span_capture), call())
    assert ["POST"] == [s.name for s in span_capture.spans]


# --- logs -------------------------------------------------------------------------------


def test_log_lines_carry_the_mcp_fields_only_during_a_call() -> None:
    formatter = JsonFormatter()
    facts = McpFacts()
    facts.method, facts.tool_name, facts.request_id, facts.session_id = (
        "tools/call",
        "add",
        "7",
        "0123456789abcdef",
    )
    outside = json.loads(formatter.format(logging.LogRecord("x", 20, "", 0, "m", (), None)))
    token = current_mcp.set(facts)
    try:
        inside = json.loads(formatter.format(logging.LogRecord("x", 20, "", 0, "m", (), None)))
        structured = add_request_context(None, "info", {"event": "m"})
    finally:
        current_mcp.reset(token)
    assert "mcp_method_name" not in outside
    expected = {
        "mcp_method_name": "tools/call",
        "mcp_tool_name": "add",
        "jsonrpc_request_id": "7",
        "mcp_session_id": "0123456789abcdef",
    }
    assert expected.items() <= inside.items()
    assert expected.items() <= dict(structured).items()


# --- Sentry (opt-in events for tool errors) ---------------------------------------------


def test_tool_errors_become_sentry_events_only_when_asked() -> None:
    import asyncio

    from sentry_receiver import Receiver, sentry_client, wait_for

    from asgi_observe.errors.sentry import SentryMiddleware

    receiver = Receiver().start()
    try:
        with sentry_client(receiver.dsn) as client:
            for option in (False, True):
                inner = McpMiddleware(
                    mcp_app(answer(is_error=True)),
                    paths=["/mcp"],
                    registry=CollectorRegistry(),
                    names=["add"],
                    sentry_tool_errors=option,
                )
                asyncio.run(post(SentryMiddleware(inner), call(name=f"tool-{option}")))
            client.flush(timeout=5)
            wait_for(lambda: len(receiver.events) >= 1, timeout=5)
        messages = [event.get("message") for event in receiver.events]
        assert ["MCP tools/call tool-True answered tool_error"] == messages
        [event] = receiver.events
        assert "tool-True" == event["tags"]["gen_ai.tool.name"]
    finally:
        receiver.stop()


# --- finding the endpoints --------------------------------------------------------------


def test_the_sdks_endpoints_are_found_at_their_full_paths() -> None:
    pytest.importorskip("mcp")
    from mcp.server.mcpserver import MCPServer
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route

    mcp_asgi = MCPServer("t").streamable_http_app()

    async def home(request: Any) -> Any:  # pragma: no cover - never called
        raise AssertionError

    outer = Starlette(routes=[Route("/", home), Mount("/tools", app=mcp_asgi)])
    assert ["/mcp"] == find_mcp_paths(mcp_asgi)
    assert ["/tools/mcp"] == find_mcp_paths(outer)
    assert [] == find_mcp_paths(Starlette(routes=[Route("/", home)]))
    assert [] == find_mcp_paths(object())


_texts = st.none() | st.sampled_from(["tools/call", "prompts/get", "a", "b"])


@given(st.lists(_texts, min_size=7, max_size=7), st.lists(_texts, min_size=7, max_size=7))
def test_equal_attribute_keys_mean_equal_span_attributes(
    first: list[str | None], second: list[str | None]
) -> None:
    # Tracing skips rebuilding the span's MCP attributes at its end when the key is as
    # it was at its start: the key must change whenever the attributes do.
    fields = (
        "method",
        "tool_name",
        "prompt_name",
        "resource_uri",
        "request_id",
        "session_id",
        "protocol_version",
    )
    one, other = McpFacts(), McpFacts()
    for facts, values in ((one, first), (other, second)):
        for field, value in zip(fields, values, strict=True):
            setattr(facts, field, value)
    if one.attribute_key() == other.attribute_key():
        assert one.span_attributes() == other.span_attributes()
    else:
        assert one.span_attributes() != other.span_attributes()
