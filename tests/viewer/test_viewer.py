"""The viewer through observe(): what its JSON API shows after real requests, in process."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from conftest import LOOPBACK_CLIENT, Stack
from opentelemetry import trace
from otel_reset import fresh_globals
from prometheus_client import CollectorRegistry
from viewer_app import SECRET
from viewer_app import app as viewed_app

from asgi_observe import observe
from asgi_observe.viewer import Viewer

API = "/_observe/api"


async def traces(client: httpx.AsyncClient, query: str = "") -> list[dict[str, Any]]:
    response = await client.get(f"{API}/traces", params={"q": query})
    assert 200 == response.status_code
    result: list[dict[str, Any]] = response.json()["traces"]
    return result


async def test_a_trace_holds_the_server_span_and_every_child_span(client: Any) -> None:
    await client.get("/slow")

    [summary] = await traces(client)
    detail = (await client.get(f"{API}/traces/{summary['trace_id']}")).json()

    assert "GET /slow" == summary["name"]
    names = {span["name"]: span for span in detail["spans"]}
    assert {"GET /slow", "load_user", "db.query", "render"} == set(names)
    assert names["db.query"]["parent_id"] == names["load_user"]["span_id"]
    assert names["load_user"]["parent_id"] == names["GET /slow"]["span_id"]
    assert "SELECT 1" == names["db.query"]["attributes"]["db.query.text"]
    assert "SERVER" == names["GET /slow"]["kind"]


async def test_search_finds_a_trace_by_request_id_and_by_trace_id(client: Any) -> None:
    await client.get("/items/1", headers={"x-request-id": "find-me-42"})
    await client.get("/items/2")

    [by_request] = await traces(client, "find-me-42")
    [by_trace] = await traces(client, by_request["trace_id"])
    [by_prefix] = await traces(client, by_request["trace_id"][:10])

    assert "find-me-42" == by_request["request_id"]
    assert by_request == by_trace == by_prefix
    assert 2 == len(await traces(client))
    assert [] == await traces(client, "no-such-id")


async def test_an_error_is_scrubbed_grouped_and_linked_to_its_trace(client: Any) -> None:
    for _ in range(2):
        await client.get(
            f"/boom?token={SECRET}&page=2",
            headers={"authorization": f"Bearer {SECRET}", "x-request-id": "err-1"},
        )

    errors = (await client.get(f"{API}/errors")).json()
    [group] = errors["groups"]
    event = (await client.get(f"{API}/errors/{group['event_id']}")).json()
    latest = (await traces(client, "err-1"))[0]  # both requests share the id; newest first

    assert 2 == group["count"]
    assert ["RuntimeError", "/boom"] == group["fingerprint"]
    assert 2 == len(errors["recent"])
    text = str(event)
    assert SECRET not in text
    assert "payment failed for token [Filtered]" == event["exception"]["values"][-1]["value"]
    assert "[Filtered]" == event["request"]["headers"]["authorization"]
    assert "token=[Filtered]&page=2" == event["request"]["query_string"]
    assert latest["trace_id"] == event["contexts"]["trace"]["trace_id"]
    assert "err-1" == event["tags"]["request_id"]
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert "viewer_app.py" in frames[-1]["filename"]
    assert ["app"] == [
        frame["function"] for frame in frames
    ]  # the capture layer's frame is left out


async def test_the_viewer_event_is_scrubbed_as_sentrys_own(span_capture: Any) -> None:
    """With a real sentry-sdk and SentryMiddleware beside it, both events say the same."""
    import sentry_sdk
    from sentry_receiver import Receiver, sentry_client, wait_for

    receiver = Receiver().start()
    headers = {
        "authorization": f"Bearer {SECRET}",
        "cookie": f"session={SECRET}; theme=dark",
        "x-request-id": "same-1",
        "content-type": "application/json",
    }
    try:
        with fresh_globals(), sentry_client(receiver.dsn):
            trace.set_tracer_provider(span_capture.provider)
            viewer = Viewer()
            app = observe(
                viewed_app,
                configure=False,
                registry=CollectorRegistry(),
                sentry=True,
                viewer=viewer,
            )
            transport = httpx.ASGITransport(
                app=app, raise_app_exceptions=False, client=("127.0.0.1", 1)
            )
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                await c.post(f"/boom?api_key={SECRET}", headers=headers, json={"password": SECRET})
                [group] = (await c.get(f"{API}/errors")).json()["groups"]
                ours = (await c.get(f"{API}/errors/{group['event_id']}")).json()
            sentry_sdk.flush(timeout=5)
            wait_for(lambda: len(receiver.events) >= 1, timeout=5)
            [theirs] = receiver.events
    finally:
        receiver.stop()

    assert SECRET not in str(ours) and SECRET.encode() not in receiver.raw
    assert theirs["request"]["query_string"] == ours["request"]["query_string"]
    assert theirs["request"]["url"] == ours["request"]["url"]
    for name in ("authorization", "cookie", "x-request-id"):
        assert theirs["request"]["headers"][name] == ours["request"]["headers"][name]
    their_exception = theirs["exception"]["values"][-1]
    our_exception = ours["exception"]["values"][-1]
    assert their_exception["value"] == our_exception["value"]
    assert their_exception["type"] == our_exception["type"]
    assert theirs["tags"]["request_id"] == ours["tags"]["request_id"]
    assert theirs["tags"]["http.route"] == ours["tags"]["http.route"]
    assert theirs["contexts"]["trace"]["trace_id"] == ours["contexts"]["trace"]["trace_id"]


async def test_logs_are_scrubbed_and_filtered_by_request_id_and_trace_id(client: Any) -> None:
    await client.get("/items/7", headers={"x-request-id": "log-a"})
    await client.get("/boom", headers={"x-request-id": "log-b", "authorization": SECRET})

    response = await client.get(f"{API}/logs", params={"request_id": "log-a"})
    [only] = [log for log in response.json()["logs"] if log["logger"] == "viewer_test_app"]
    [trace_b] = await traces(client, "log-b")
    by_trace = (await client.get(f"{API}/logs", params={"trace_id": trace_b["trace_id"]})).json()
    everything = (await client.get(f"{API}/logs")).text

    assert "looked up item 7" == only["message"]
    assert {"log-b"} == {log["request_id"] for log in by_trace["logs"]}
    assert "about to fail, token=[Filtered]" in [log["message"] for log in by_trace["logs"]]
    assert SECRET not in everything


async def test_the_viewer_own_requests_appear_nowhere(stack: Stack, client: Any) -> None:
    for path in ("/", "/viewer.js", "/api/status", "/api/traces", "/api/logs", "/api/red"):
        assert 200 == (await client.get("/_observe" + path)).status_code

    metrics = (await client.get("/metrics")).text
    logs = (await client.get(f"{API}/logs")).json()["logs"]

    assert [] == list(stack.capture.spans)
    assert [] == await traces(client)
    assert "_observe" not in metrics
    # The test's own in-process httpx client logs its requests too, from outside them.
    assert all("_observe" not in log["message"] for log in logs if log["logger"] != "httpx")


async def test_red_table_reads_the_metrics_families_with_route_templates(client: Any) -> None:
    for path in ("/items/1", "/items/2", "/items/3", "/boom", "/nope"):
        await client.get(path)

    rows = {
        (row["method"], row["route"]): row
        for row in (await client.get(f"{API}/red")).json()["red"]["rows"]
    }
    metrics = (await client.get("/metrics")).text

    assert {("GET", "/items/{item_id}"), ("GET", "/boom"), ("GET", "_unmatched")} == set(rows)
    assert 3 == rows[("GET", "/items/{item_id}")]["count"]
    assert 1.0 == rows[("GET", "/boom")]["error_ratio"]
    assert 0.0 == rows[("GET", "_unmatched")]["error_ratio"]
    assert rows[("GET", "/items/{item_id}")]["p99_ms"] is not None
    # Nothing double-counted: the viewer read the same series /metrics exposes.
    assert 'http_route="/items/{item_id}"' in metrics
    labels = (
        'http_request_method="GET",http_response_status_code="200",http_route="/items/{item_id}"'
    )
    assert f"http_server_request_duration_seconds_count{{{labels}}} 3.0" in metrics


async def tiny_mcp_server(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers JSON-RPC over one POST: tools/list names "add" and "flaky"; "flaky" fails."""
    body = b""
    more = True
    while more:
        received = await receive()
        body, more = body + received.get("body", b""), received.get("more_body", False)
    message = json.loads(body)
    if message["method"] == "tools/list":
        result: dict[str, Any] = {"tools": [{"name": "add"}, {"name": "flaky"}]}
    else:
        result = {"content": [], "isError": message["params"]["name"] != "add"}
    answer = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


async def test_mcp_tools_get_their_red_table(span_capture: Any) -> None:
    with fresh_globals():
        trace.set_tracer_provider(span_capture.provider)
        registry = CollectorRegistry()
        app = observe(
            tiny_mcp_server,
            configure=False,
            registry=registry,
            metrics_path="/metrics",
            mcp_paths=["/mcp"],
            viewer=Viewer(),
            sentry=False,
        )
        transport = httpx.ASGITransport(app=app, client=LOOPBACK_CLIENT)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            calls = [("tools/list", None)] + [("tools/call", "add")] * 3
            calls += [("tools/call", "flaky"), ("tools/call", "made-up")]
            for n, (method, name) in enumerate(calls):
                params = {"name": name, "arguments": {}} if name else {}
                await c.post(
                    "/mcp", json={"jsonrpc": "2.0", "id": n, "method": method, "params": params}
                )
            red = (await c.get(f"{API}/red")).json()
            status = (await c.get(f"{API}/status")).json()
            metrics = (await c.get("/metrics")).text

    rows = {(row["method"], row["target"]): row for row in red["mcp"]["rows"]}
    assert {
        ("tools/call", "add"): (3, 0),
        ("tools/call", "flaky"): (1, 1),
        ("tools/call", "_unknown"): (1, 1),
        ("tools/list", ""): (1, 0),
    } == {key: (row["count"], row["errors"]) for key, row in rows.items()}
    assert "tools/call" == red["mcp"]["rows"][0]["method"]  # busiest first
    assert status["mcp_metrics"] is True
    # The HTTP table sees one route; the viewer read the series /metrics exposes.
    assert 6 == sum(row["count"] for row in red["red"]["rows"])
    assert 'gen_ai_tool_name="add"' in metrics


async def test_the_page_and_its_assets_are_self_contained(client: Any) -> None:
    redirect = await client.get("/_observe", follow_redirects=False)
    page = await client.get("/_observe/")
    script = await client.get("/_observe/viewer.js")
    style = await client.get("/_observe/viewer.css")

    assert (308, "/_observe/") == (redirect.status_code, redirect.headers["location"])
    assert "text/html; charset=utf-8" == page.headers["content-type"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for text in (page.text, script.text, style.text):
        assert "http://" not in text.replace("http://127.0.0.1", "") and "https://" not in text
    assert 'src="viewer.js"' in page.text
    assert "innerHTML" not in script.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/_observe/api/traces", 405), ("GET", "/_observe/api/nothing", 404),
     ("GET", "/_observe/api/traces/0123", 404), ("GET", "/_observe/api/errors/x", 404)],
)  # fmt: skip
async def test_other_methods_and_paths(client: Any, method: str, path: str, status: int) -> None:
    assert status == (await client.request(method, path)).status_code


async def test_a_remote_client_is_refused(stack: Stack) -> None:
    transport = httpx.ASGITransport(app=stack.app, client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as remote:
        refused = await remote.get("/_observe/api/status")
        app_response = await remote.get("/items/1")

    assert 403 == refused.status_code
    assert "203.0.113.9 is not allowed" in refused.text
    assert 200 == app_response.status_code  # only the viewer is guarded


async def test_off_unless_enabled(span_capture: Any) -> None:
    with fresh_globals():
        trace.set_tracer_provider(span_capture.provider)
        root_handlers = list(logging.getLogger().handlers)
        app = observe(viewed_app, configure=False, registry=CollectorRegistry(), sentry=False)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            assert 404 == (await c.get("/_observe/")).status_code

        processors = span_capture.provider._active_span_processor._span_processors
        assert 1 == len(processors)  # the test's own exporter only
        assert root_handlers == [h for h in logging.getLogger().handlers if h in root_handlers]
        assert "asgi_observe.viewer.viewer" not in _layer_modules(app)


def test_off_imports_nothing_of_the_viewer() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from asgi_observe import observe\n"
        "async def app(scope, receive, send): pass\n"
        "observe(app, configure=False)\n"
        "print(sorted(m for m in sys.modules if m.startswith('asgi_observe.viewer')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )

    assert "[]" == result.stdout.strip(), result.stderr


def _layer_modules(app: Any) -> set[str]:
    modules = set()
    while app is not None:
        modules.add(type(app).__module__)
        app = getattr(app, "app", None)
    return modules


async def test_sampling_is_respected(span_capture: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    with fresh_globals():
        trace.set_tracer_provider(TracerProvider(sampler=ALWAYS_OFF))
        viewer = Viewer()
        app = observe(viewed_app, configure=False, registry=CollectorRegistry(), viewer=viewer)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            await c.get("/slow", headers={"x-request-id": "unsampled"})
            listed = (await c.get(f"{API}/traces")).json()["traces"]

    assert [] == listed
    assert 0 == viewer.traces.span_count()


async def test_real_exporters_keep_every_span_the_viewer_shows(stack: Stack, client: Any) -> None:
    await client.get("/slow")
    [summary] = await traces(client)
    shown = (await client.get(f"{API}/traces/{summary['trace_id']}")).json()["spans"]

    exported = {format(span.context.span_id, "016x") for span in stack.capture.spans}
    assert exported == {span["span_id"] for span in shown}


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="max_traces"):
        Viewer(max_traces=0)
    with pytest.raises(ValueError, match="not a network"):
        Viewer(allow=["nonsense"])
    with pytest.raises(TypeError, match="list of networks"):
        Viewer(allow="127.0.0.1")
    with pytest.raises(ValueError, match="viewer_path"):
        observe(viewed_app, configure=False, viewer_path="/")
    with pytest.raises(ValueError):
        observe(viewed_app, configure=False, viewer_path="no-slash")


async def test_outgoing_client_spans_of_an_instrumentation_join_the_trace(
    span_capture: Any,
) -> None:
    """httpx instrumented by OpenTelemetry's own instrumentation, called from a handler."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    async def downstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def calling_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        transport = httpx.ASGITransport(app=downstream)
        async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as out:
            HTTPXClientInstrumentor.instrument_client(out, tracer_provider=span_capture.provider)
            await out.get("/stock/7")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with fresh_globals():
        trace.set_tracer_provider(span_capture.provider)
        viewer = Viewer()
        app = observe(calling_app, configure=False, registry=CollectorRegistry(), viewer=viewer)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            await c.get("/checkout")
            [summary] = (await c.get(f"{API}/traces")).json()["traces"]
            detail = (await c.get(f"{API}/traces/{summary['trace_id']}")).json()

    server, client_span = sorted(detail["spans"], key=lambda span: span["kind"], reverse=True)
    assert ("SERVER", "CLIENT") == (server["kind"], client_span["kind"])
    assert server["span_id"] == client_span["parent_id"]
    assert "opentelemetry.instrumentation.httpx" == client_span["scope"]
    attributes = client_span["attributes"]
    assert 204 == attributes.get("http.response.status_code", attributes.get("http.status_code"))


async def test_without_metrics_the_red_table_says_so(span_capture: Any) -> None:
    with fresh_globals():
        trace.set_tracer_provider(span_capture.provider)
        app = observe(viewed_app, configure=False, metrics=False, viewer=Viewer())
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            await c.get("/items/1")
            red = (await c.get(f"{API}/red")).json()
            status = (await c.get(f"{API}/status")).json()

    assert {"red": None, "mcp": None} == red
    assert (False, True, False) == (status["metrics"], status["tracing"], status["mcp_metrics"])


async def test_head_gets_headers_only_and_a_fault_is_a_500(stack: Stack, client: Any) -> None:
    head = await client.head("/_observe/api/status")

    def broken(*args: Any) -> Any:
        raise RuntimeError("store broke")

    stack.viewer.trace_list = broken  # type: ignore[method-assign]
    faulty = await client.get("/_observe/api/traces")

    assert (200, b"") == (head.status_code, head.content)
    assert 0 < int(head.headers["content-length"])
    assert 500 == faulty.status_code
    assert 200 == (await client.get("/_observe/api/status")).status_code
