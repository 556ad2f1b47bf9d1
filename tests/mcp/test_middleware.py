"""McpMiddleware on hand-written apps: what it measures, and that it never changes a byte."""

from __future__ import annotations

import asyncio
import json
import logging
import tracemalloc
from typing import Any

import pytest
from asgi_driver import Recorder, http_scope
from mcp_apps import accepted, event, json_answer, mcp_app, sse_answer
from prometheus_client import CollectorRegistry

from asgi_observe._core.mcp_facts import current_mcp
from asgi_observe._core.record import ensure_record
from asgi_observe.mcp import McpMiddleware
from asgi_observe.mcp.exchange import session_digest

POST_HEADERS = [
    (b"content-type", b"application/json"),
    (b"accept", b"application/json, text/event-stream"),
]


def call_body(
    method: str = "tools/call", name: str | None = "add", id_: Any = 1, **params: Any
) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id_ is not None:
        message["id"] = id_
    if name is not None:
        params["name"] = name
    if params:
        message["params"] = params
    return json.dumps(message).encode()


def result(id_: Any = 1, **fields: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": fields}


def tools_list(*names: str, id_: Any = 1) -> dict[str, Any]:
    return result(id_, tools=[{"name": name, "inputSchema": {}} for name in names])


class Stack:
    def __init__(self, app: Any, **options: Any) -> None:
        self.registry = CollectorRegistry()
        self.app = app
        self.layer = McpMiddleware(app, paths=["/mcp"], registry=self.registry, **options)

    async def post(
        self,
        body: bytes | list[bytes],
        *,
        path: str = "/mcp",
        headers: Any = (),
        method: str = "POST",
    ) -> Recorder:
        chunks = [body] if isinstance(body, bytes) else body
        incoming = [
            {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
            for n, chunk in enumerate(chunks)
        ]
        recorder = Recorder(incoming)
        await self.layer(
            http_scope(path, method=method, headers=[*POST_HEADERS, *headers]),
            recorder.receive,
            recorder.send,
        )
        return recorder

    def count(self, **labels: str) -> float:
        full = {
            "mcp_method_name": "tools/call",
            "gen_ai_tool_name": "",
            "gen_ai_prompt_name": "",
            "error_type": "",
        }
        full.update(labels)
        value = self.registry.get_sample_value("mcp_server_operation_duration_seconds_count", full)
        return value or 0.0

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def series(self) -> list[dict[str, str]]:
        return [
            sample.labels
            for metric in self.registry.collect()
            if metric.name == "mcp_server_operation_duration_seconds"
            for sample in metric.samples
            if sample.name.endswith("_count")
        ]


async def bare(app: Any, body: bytes | list[bytes], headers: Any = ()) -> Recorder:
    chunks = [body] if isinstance(body, bytes) else body
    recorder = Recorder(
        [
            {"type": "http.request", "body": c, "more_body": n < len(chunks) - 1}
            for n, c in enumerate(chunks)
        ]
    )
    await app(
        http_scope("/mcp", method="POST", headers=[*POST_HEADERS, *headers]),
        recorder.receive,
        recorder.send,
    )
    return recorder


# --- outcomes per tool ----------------------------------------------------------------


async def test_a_successful_call_of_a_listed_tool_is_labelled_with_its_name() -> None:
    stack = Stack(mcp_app(json_answer(tools_list("add"))))
    await stack.post(call_body("tools/list", None))
    stack.layer.app = mcp_app(json_answer(result(1, content=[], isError=False)))
    await stack.post(call_body())
    assert 1.0 == stack.count(gen_ai_tool_name="add")


async def test_an_is_error_result_counts_as_tool_error() -> None:
    stack = Stack(mcp_app(json_answer(result(1, isError=True))), names=["add"])
    await stack.post(call_body())
    assert 1.0 == stack.count(gen_ai_tool_name="add", error_type="tool_error")


async def test_a_json_rpc_error_counts_with_its_code() -> None:
    answer = {"jsonrpc": "2.0", "id": 7, "error": {"code": -32602, "message": "Unknown resource"}}
    stack = Stack(mcp_app(json_answer(answer, status=400)))
    await stack.post(call_body("resources/read", None, id_=7, uri="res://x"))
    assert 1.0 == stack.count(mcp_method_name="resources/read", error_type="-32602")


async def test_an_sse_answer_is_matched_by_id_past_server_requests_and_notifications() -> None:
    stack = Stack(
        mcp_app(
            sse_answer(
                event(
                    {
                        "jsonrpc": "2.0",
                        "method": "notifications/progress",
                        "params": {"progress": 1},
                    }
                ),
                event(
                    {"jsonrpc": "2.0", "id": 0, "method": "sampling/createMessage", "params": {}}
                ),
                event(result("abc", isError=True)),
            )
        ),
        names=["add"],
    )
    await stack.post(call_body(id_="abc"))
    assert [
        {
            "mcp_method_name": "tools/call",
            "gen_ai_tool_name": "add",
            "gen_ai_prompt_name": "",
            "error_type": "tool_error",
        }
    ] == stack.series()


async def test_a_prompt_is_labelled_once_listed() -> None:
    stack = Stack(mcp_app(json_answer(result(1, prompts=[{"name": "greet"}]))))
    await stack.post(call_body("prompts/list", None))
    stack.layer.app = mcp_app(json_answer(result(2, messages=[])))
    await stack.post(call_body("prompts/get", "greet", id_=2))
    assert 1.0 == stack.count(mcp_method_name="prompts/get", gen_ai_prompt_name="greet")


async def test_a_notification_is_measured_to_its_202() -> None:
    stack = Stack(mcp_app(accepted))
    await stack.post(call_body("notifications/initialized", None, id_=None))
    assert 1.0 == stack.count(mcp_method_name="notifications/initialized")


async def test_a_batch_answers_each_request() -> None:
    batch = b"[" + call_body(id_=1) + b"," + call_body(id_=2) + b"]"
    stack = Stack(mcp_app(json_answer([result(2), result(1, isError=True)])), names=["add"])
    await stack.post(batch)
    assert (1.0, 1.0) == (
        stack.count(gen_ai_tool_name="add"),
        stack.count(gen_ai_tool_name="add", error_type="tool_error"),
    )


async def test_a_client_answer_to_a_server_request_is_no_operation() -> None:
    stack = Stack(mcp_app(accepted))
    await stack.post(json.dumps(result(0, model="m")).encode())
    assert [] == stack.series()


async def test_an_unanswered_request_counts_as_incomplete() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})

    stack = Stack(app, names=["add"])
    await stack.post(call_body())
    assert 1.0 == stack.count(gen_ai_tool_name="add", error_type="incomplete_response")


async def test_mcp_method_and_name_headers_are_used_when_the_body_is_too_large() -> None:
    stack = Stack(
        mcp_app(json_answer(result(1, isError=True))), names=["add"], max_message_bytes=64
    )
    body = call_body(padding="x" * 500)
    await stack.post(body, headers=[(b"mcp-method", b"tools/call"), (b"mcp-name", b"add")])
    assert 1.0 == stack.count(gen_ai_tool_name="add", error_type="tool_error")


MCP_HEADERS = [(b"mcp-method", b"tools/call"), (b"mcp-name", b"add")]


@pytest.mark.parametrize("with_headers", [False, True], ids=["body", "mcp-headers"])
@pytest.mark.parametrize("id_first", [True, False], ids=["id-first", "result-first"])
async def test_a_long_string_id_is_cut_alike_in_request_and_answer(
    with_headers: bool, id_first: bool
) -> None:
    # The quick readers and the full parse must cut an id the same way, whichever reads
    # the request and whichever reads the answer.
    long_id = "i" * 10_000
    answer: dict[str, Any] = result(long_id, isError=True)
    if not id_first:
        answer = {"jsonrpc": "2.0", "result": answer["result"], "id": long_id}
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        seen.append(current_mcp.get())
        for message in json_answer(answer)(b""):
            await send(message)

    # The id first, as the SDK clients write it, so that the quick reader can take it.
    request = {"jsonrpc": "2.0", "id": long_id, "method": "tools/call", "params": {"name": "add"}}
    stack = Stack(app, names=["add"])
    await stack.post(json.dumps(request).encode(), headers=MCP_HEADERS if with_headers else ())
    assert seen[0] is not None and seen[0].request_id is not None
    assert 0 < len(str(seen[0].request_id)) <= 256
    assert 1.0 == stack.count(gen_ai_tool_name="add", error_type="tool_error")


@pytest.mark.parametrize("with_headers", [False, True], ids=["body", "mcp-headers"])
async def test_an_id_of_5000_digits_is_served_and_counted_without_a_fault(
    with_headers: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Past 4300 digits both int() and json.loads raise ValueError: the id is unreadable.
    huge = b"9" * 5000
    body = b'{"jsonrpc":"2.0","id":' + huge + b',"method":"tools/call","params":{"name":"add"}}'
    answer = b'{"jsonrpc":"2.0","id":' + huge + b',"result":{"content":[],"isError":true}}'
    app = mcp_app(json_answer(answer))
    headers = MCP_HEADERS if with_headers else []
    expected = await bare(app, body, headers)
    stack = Stack(app, names=["add"])
    with caplog.at_level(logging.DEBUG, logger="asgi_observe"):
        actual = await stack.post(body, headers=headers)
    assert expected.sent == actual.sent
    assert [] == [r for r in caplog.records if r.name.startswith("asgi_observe")]
    assert 1.0 == sum(
        stack.registry.get_sample_value("mcp_server_operation_duration_seconds_count", labels)
        or 0.0
        for labels in stack.series()
    )


@pytest.mark.parametrize("status", [406, 415])
@pytest.mark.parametrize("with_headers", [False, True], ids=["body", "mcp-headers"])
async def test_an_answer_before_the_body_was_read_is_counted(
    status: int, with_headers: bool
) -> None:
    # The SDKs refuse a wrong Accept or Content-Type before reading the body.
    async def refusing(scope: Any, receive: Any, send: Any) -> None:
        for message in json_answer(b'{"error":"Not Acceptable"}', status=status)(b""):
            await send(message)

    stack = Stack(refusing, names=["add"])
    expected = await bare(refusing, call_body())
    actual = await stack.post(call_body(), headers=MCP_HEADERS if with_headers else ())
    assert expected.sent == actual.sent
    if with_headers:
        assert 1.0 == stack.count(gen_ai_tool_name="add", error_type=str(status))
    else:
        assert 1.0 == stack.count(mcp_method_name="_unknown", error_type=str(status))
    assert 1 == len(stack.series())


# --- cardinality ------------------------------------------------------------------------


async def test_made_up_tool_and_method_names_never_become_labels() -> None:
    stack = Stack(mcp_app(json_answer(result(1, isError=True))), names=["add"])
    for n in range(300):
        await stack.post(call_body(name=f"tool-{n}"))
        await stack.post(call_body(method=f"made/up-{n}", name=None))
    assert {"add", "_unknown", ""} >= {s["gen_ai_tool_name"] for s in stack.series()}
    assert {"tools/call", "_other"} == {s["mcp_method_name"] for s in stack.series()}
    assert 300.0 == stack.count(gen_ai_tool_name="_unknown", error_type="tool_error")


async def test_published_names_past_the_cap_are_overflow() -> None:
    stack = Stack(mcp_app(json_answer(tools_list(*[f"t{n}" for n in range(5)]))), max_names=3)
    await stack.post(call_body("tools/list", None))
    stack.layer.app = mcp_app(json_answer(result(1)))
    for name in ("t0", "t4", "never-listed"):
        await stack.post(call_body(name=name))
    assert (1.0, 1.0, 1.0) == (
        stack.count(gen_ai_tool_name="t0"),
        stack.count(gen_ai_tool_name="_overflow"),
        stack.count(gen_ai_tool_name="_unknown"),
    )


async def test_label_sets_past_the_cap_are_overflow() -> None:
    stack = Stack(mcp_app(json_answer(result(1))), max_label_sets=2, names=["a", "b", "c"])
    for name in "abc":
        await stack.post(call_body(name=name))
    assert 1.0 == stack.count(
        mcp_method_name="_overflow",
        gen_ai_tool_name="_overflow",
        gen_ai_prompt_name="_overflow",
        error_type="_overflow",
    )


# --- sessions ---------------------------------------------------------------------------


async def test_a_session_starts_with_its_id_and_ends_with_delete() -> None:
    stack = Stack(
        mcp_app(sse_answer(event(result(1, protocolVersion="2025-11-25")), session=b"s-1"))
    )
    await stack.post(call_body("initialize", None, protocolVersion="2025-11-25"))
    assert 1.0 == stack.sample("mcp_server_sessions_active")
    stack.layer.app = mcp_app(json_answer(b"", status=200))
    await stack.post(b"", method="DELETE", headers=[(b"mcp-session-id", b"s-1")])
    assert (0.0, 1.0) == (
        stack.sample("mcp_server_sessions_active"),
        stack.sample("mcp_server_session_duration_seconds_count", reason="deleted"),
    )


async def test_a_404_for_a_session_ends_it_and_invented_ids_create_nothing() -> None:
    stack = Stack(mcp_app(sse_answer(event(result(1)), session=b"s-2")))
    await stack.post(call_body("initialize", None))
    stack.layer.app = mcp_app(json_answer(b"", status=404))
    await stack.post(call_body("ping", None), headers=[(b"mcp-session-id", b"invented")])
    assert 1.0 == stack.sample("mcp_server_sessions_active")
    await stack.post(call_body("ping", None), headers=[(b"mcp-session-id", b"s-2")])
    assert (0.0, 1.0) == (
        stack.sample("mcp_server_sessions_active"),
        stack.sample("mcp_server_session_duration_seconds_count", reason="not_found"),
    )


async def test_an_idle_session_ends_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    import asgi_observe.mcp.sessions as sessions

    clock = [1000.0]
    monkeypatch.setattr(sessions, "_monotonic", lambda: clock[0])
    stack = Stack(mcp_app(sse_answer(event(result(1)), session=b"s-3")), session_idle_timeout=60)
    await stack.post(call_body("initialize", None))
    clock[0] += 61
    stack.layer.app = mcp_app(json_answer(result(1)))
    await stack.post(call_body("ping", None))  # any request sweeps
    assert (0.0, 1.0) == (
        stack.sample("mcp_server_sessions_active"),
        stack.sample("mcp_server_session_duration_seconds_count", reason="idle"),
    )


async def test_an_open_get_stream_keeps_its_session_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    import asgi_observe.mcp.sessions as sessions

    clock = [1000.0]
    monkeypatch.setattr(sessions, "_monotonic", lambda: clock[0])
    stack = Stack(mcp_app(sse_answer(event(result(1)), session=b"s-4")), session_idle_timeout=60)
    await stack.post(call_body("initialize", None))
    table = stack.layer._families.session_table
    assert table.request_started("s-4")  # the GET stream, still open
    clock[0] += 120
    table._next_sweep = 0.0
    table.sweep()
    assert 1.0 == stack.sample("mcp_server_sessions_active")


# --- the facts on the record ----------------------------------------------------------


async def test_facts_are_on_the_record_and_in_the_context_while_the_app_runs() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        facts = current_mcp.get()
        seen.append(facts.log_fields() if facts else None)
        for message in json_answer(result("x1", isError=True), session=b"sid")(b""):
            await send(message)

    layer = McpMiddleware(app, paths=["/mcp"], registry=CollectorRegistry())
    scope, record = ensure_record(
        http_scope("/mcp", method="POST", headers=[(b"mcp-session-id", b"sid")])
    )
    recorder = Recorder([{"type": "http.request", "body": call_body(id_="x1")}])
    await layer(scope, recorder.receive, recorder.send)
    assert [("tools/call", "add", "x1", session_digest("sid"))] == seen
    assert record.mcp is not None and "tool_error" == record.mcp.error_type
    assert None is current_mcp.get()


async def test_other_paths_and_scopes_pass_straight_through() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["type"], "asgi_observe.record" in scope, receive, send))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    stack = Stack(app)
    await stack.post(call_body(), path="/other")

    async def receive() -> Any:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        pass

    await stack.layer({"type": "lifespan"}, receive, send)
    assert [] == stack.series()
    assert [False, False] == [has_record for _, has_record, _, _ in seen]
    assert (receive, send) == seen[1][2:]


def test_paths_are_validated() -> None:
    with pytest.raises(TypeError):
        McpMiddleware(mcp_app(accepted), paths="/mcp")
    with pytest.raises(ValueError):
        McpMiddleware(mcp_app(accepted), paths=["mcp"])
    with pytest.raises(ValueError):
        McpMiddleware(mcp_app(accepted), paths=["/mcp"], max_message_bytes=0)


async def test_a_trailing_slash_is_the_same_endpoint() -> None:
    stack = Stack(mcp_app(accepted))
    await stack.post(call_body("notifications/initialized", None, id_=None), path="/mcp/")
    assert 1.0 == stack.count(mcp_method_name="notifications/initialized")


# --- bytes and timing -------------------------------------------------------------------


async def test_each_streamed_event_reaches_the_client_before_the_app_continues() -> None:
    recorder = Recorder([{"type": "http.request", "body": call_body()}])
    passed: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for n in range(3):
            chunk = {"type": "http.response.body", "body": event(result(n + 10)), "more_body": True}
            await send(chunk)
            passed.append(recorder.sent[-1] is chunk)  # the very message, at once
        await send({"type": "http.response.body", "body": b""})

    layer = McpMiddleware(app, paths=["/mcp"], registry=CollectorRegistry())
    await layer(http_scope("/mcp", method="POST"), recorder.receive, recorder.send)
    assert [True, True, True] == passed


# --- bad input: served as without observe(), counted as invalid or unknown -------------


def _big_body() -> list[bytes]:
    return (
        [b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"x":"']
        + [b"y" * 65536] * 800
        + [b'"}}']
    )


BAD_REQUESTS = {
    "malformed JSON": (b"{not json", "_invalid"),
    "JSON that is not JSON-RPC": (b'{"hello":"world"}', "_invalid"),
    "recursion bomb": (b"[" * 100_000 + b"]" * 100_000, "_invalid"),
    "invalid UTF-8": (b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe"}', "_invalid"),
    "object id": (b'{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}', "_invalid"),
    "50 MB body": (_big_body(), "_unknown"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
async def test_bad_requests_are_served_unchanged_and_counted(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    body, method = BAD_REQUESTS[case]
    parse_error = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "Parse error"},
    }
    app = mcp_app(json_answer(parse_error, status=400))
    expected = await bare(app, body)
    stack = Stack(app)
    with caplog.at_level(logging.DEBUG, logger="asgi_observe"):
        actual = await stack.post(body)
    assert expected.sent == actual.sent
    assert 1.0 == stack.count(mcp_method_name=method, error_type="-32700")
    assert [] == [r for r in caplog.records if r.name.startswith("asgi_observe")]


async def test_a_50_mb_body_is_not_kept() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass  # a server refusing the body reads and drops it
        for message in json_answer(b"", status=413)(b""):
            await send(message)

    stack = Stack(app)
    chunks = _big_body()
    tracemalloc.start()
    try:
        await stack.post(chunks)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The chunks exist before the request; reading them must add no copy past the cap.
    assert peak < 4_000_000
    assert 1.0 == stack.count(mcp_method_name="_unknown", error_type="413")


async def test_10000_messages_in_one_batch_are_served_and_bounded() -> None:
    batch = json.dumps(
        [{"jsonrpc": "2.0", "id": n, "method": "ping"} for n in range(10_000)]
    ).encode()
    answers = [result(n) for n in range(10_000)]
    app = mcp_app(json_answer(answers))
    expected = await bare(app, batch)
    stack = Stack(app, max_message_bytes=4 << 20)
    actual = await stack.post(batch)
    assert expected.sent == actual.sent
    assert 100.0 == stack.count(mcp_method_name="ping")


async def test_an_sse_stream_with_a_10_mb_event_is_served_and_the_rest_read() -> None:
    huge = b"data: " + b"z" * (10 << 20) + b"\n\n"
    app = mcp_app(sse_answer(huge[: 5 << 20], huge[5 << 20 :], event(result(1, isError=True))))
    expected = await bare(app, call_body())
    stack = Stack(app, names=["add"])
    actual = await stack.post(call_body())
    assert expected.sent == actual.sent
    assert 1.0 == stack.count(gen_ai_tool_name="add", error_type="tool_error")


async def test_an_sse_stream_that_never_ends_is_read_with_bounded_memory() -> None:
    stop = asyncio.Event()
    recorder = Recorder([{"type": "http.request", "body": call_body()}])

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        n = 0
        while not stop.is_set():
            n += 1
            await send(
                {"type": "http.response.body", "body": b"data: " + b"q" * 1000, "more_body": True}
            )
            if n == 20_000:  # 20 MB of one event that never ends
                stop.set()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    layer = McpMiddleware(app, paths=["/mcp"], registry=CollectorRegistry())
    tracemalloc.start()
    try:
        await layer(http_scope("/mcp", method="POST"), recorder.receive, recorder.send)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 20_002 == len(recorder.sent)
    assert peak < 8_000_000  # the recorder keeps 20,000 references; no event data is kept


async def test_an_answer_with_an_object_id_matches_nothing() -> None:
    stack = Stack(
        mcp_app(json_answer({"jsonrpc": "2.0", "id": {"a": 1}, "result": {}})), names=["add"]
    )
    await stack.post(call_body())
    assert 1.0 == stack.count(gen_ai_tool_name="add", error_type="incomplete_response")


async def test_a_fault_in_our_reading_never_changes_the_response(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import asgi_observe.mcp.exchange as exchange

    def broken(data: bytes) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(exchange, "parse_messages", broken)
    monkeypatch.setattr(exchange, "_fault_reported", False)
    app = mcp_app(json_answer(result(1)))
    expected = await bare(app, call_body())
    with caplog.at_level(logging.DEBUG, logger="asgi_observe.mcp"):
        stack = Stack(app)
        for _ in range(3):
            actual = await stack.post(call_body())
    assert expected.sent == actual.sent
    assert 1 == len([r for r in caplog.records if r.levelno >= logging.ERROR])


async def test_a_malformed_header_pair_is_served_and_the_body_still_read() -> None:
    # A pair of three items cannot be read as a header: no MCP headers are taken from
    # it, and the request is still answered and measured from its body.
    stack = Stack(mcp_app(json_answer(result(isError=False))), names=["add"])
    recorder = await stack.post(call_body(), headers=[(b"mcp-method", b"tools/call", b"x")])
    assert 200 == recorder.status
    assert 1.0 == stack.count(gen_ai_tool_name="add")


async def test_an_mcp_header_value_that_is_not_bytes_is_ignored() -> None:
    stack = Stack(mcp_app(json_answer(result(isError=False))), names=["add"])
    recorder = await stack.post(call_body(), headers=[(b"mcp-session-id", "not-bytes")])
    assert 200 == recorder.status
    assert 1.0 == stack.count(gen_ai_tool_name="add")
