"""SentryMiddleware with raw ASGI apps and the real sentry-sdk HTTP transport.

Every event is asserted on the bytes a local receiver got (see sentry_receiver.py).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from asgi_driver import Recorder, call, http_scope, websocket_scope
from sentry_receiver import (
    Receiver,
    free_closed_port,
    join_sentry_workers,
    sentry_client,
    sentry_workers,
    wait_for,
)

from asgi_observe._core.record import RECORD_KEY
from asgi_observe.errors.sentry import MECHANISM, SentryMiddleware, sentry_active
from asgi_observe.errors.sentry_event import RequestEvents
from asgi_observe.errors.sentry_policy import ErrorPolicy, http_status
from asgi_observe.frameworks.routes import ROUTE_KEY
from asgi_observe.logs.request_id import RequestIdMiddleware
from asgi_observe.scrub.scrubber import FILTERED, Scrubber
from asgi_observe.scrub.values import MAX_BODY_BYTES
from asgi_observe.tracing.middleware import TracingMiddleware

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01".encode()

# One secret per kind the issue lists; none may appear in anything that leaves the process.
BEARER = "bearer-tok-8f3a1c9e5b"
SECRET_HEADERS = {
    b"authorization": f"Bearer {BEARER}".encode(),
    b"proxy-authorization": b"Basic cHJveHk6cHJveHktcGFzcy0xMjM=",  # proxy:proxy-pass-123
    b"cookie": b"sessionid=sess-cookie-4711; theme=solarized-dark",
    b"x-api-key": b"apikey-value-0042",
    b"x-upstream-token": b"upstream-token-77",
    b"x-client-secret": b"client-secret-55",
    b"x-password": b"header-password-9",
    b"x-passwd": b"header-passwd-10",
    b"x-session-id": b"header-session-11",
    b"x-credential": b"header-credential-12",
    b"x-amz-signature": b"header-signature-13",
    b"x-csrf-token": b"header-csrf-14",
    b"x-xsrf-token": b"header-xsrf-15",
    b"x-my-api-key": b"header-api-key-16",
    b"x-service-auth": b"header-auth-17",
}
QUERY = b"page=2&access_token=query-token-99&api_key=query-key-98"
BODY = json.dumps(
    {"user": "bob", "password": "body-password-66", "profile": {"client_secret": "body-secret-65"}}
).encode()
PLANTED = (
    BEARER,
    "proxy-pass-123",
    "cHJveHk6cHJveHktcGFzcy0xMjM",
    "sess-cookie-4711",
    "solarized-dark",
    *(value.decode() for value in list(SECRET_HEADERS.values())[3:]),
    "query-token-99",
    "query-key-98",
    "body-password-66",
    "body-secret-65",
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def sentry(receiver: Receiver) -> Iterator[Any]:
    with sentry_client(receiver.dsn) as client:
        yield client


def flushed(receiver: Receiver, count: int = 1) -> list[dict[str, Any]]:
    sentry_sdk.flush(timeout=5)
    wait_for(lambda: len(receiver.events) >= count, timeout=2)
    return receiver.events


def secret_scope(path: str = "/items/42", **extra: Any) -> dict[str, Any]:
    headers = [(b"host", b"api.example.org"), (b"traceparent", TRACEPARENT)]
    headers += [(b"x-request-id", b"req-0001"), *SECRET_HEADERS.items()]
    headers.append((b"content-type", b"application/json"))
    return http_scope(path, method="POST", headers=headers, query_string=QUERY, **extra)


def body_recorder() -> Recorder:
    return Recorder([{"type": "http.request", "body": BODY, "more_body": False}])


async def failing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body, keeps the raw structures and a copied token in locals, then fails."""
    scope[ROUTE_KEY] = "/items/{item_id}"
    message = await receive()
    headers = scope["headers"]
    query_string = scope["query_string"]  # noqa: F841 (a local sentry-sdk serialises)
    copied = dict(headers)[b"authorization"].decode().split()[1]
    parsed = json.loads(message["body"])
    raise RuntimeError(f"upstream refused {copied} for {parsed['user']}")


def stack(app: Any, span_capture: Any, **options: Any) -> Any:
    """The observe() order: request id, tracing, Sentry, app."""
    sentry_layer = SentryMiddleware(app, **options)
    return RequestIdMiddleware(
        TracingMiddleware(sentry_layer, tracer_provider=span_capture.provider)
    )


async def test_event_carries_exception_route_request_id_and_trace(
    sentry: Any, receiver: Receiver, span_capture: Any
) -> None:
    with pytest.raises(RuntimeError):
        await call(stack(failing_app, span_capture), secret_scope(), body_recorder())

    [event] = flushed(receiver)
    [server_span] = span_capture.spans
    [exception] = event["exception"]["values"]
    assert ("RuntimeError", {"type": MECHANISM, "handled": False}) == (
        exception["type"],
        exception["mechanism"],
    )
    assert "upstream refused [Filtered] for bob" == exception["value"]
    assert {"request_id": "req-0001", "http.route": "/items/{item_id}"} == {
        key: event["tags"][key] for key in ("request_id", "http.route")
    }
    assert "/items/{item_id}" == event["transaction"]
    trace = event["contexts"]["trace"]
    assert (TRACE_ID, format(server_span.context.span_id, "016x"), PARENT_ID) == (
        trace["trace_id"],
        trace["span_id"],
        trace["parent_span_id"],
    )
    # The envelope's trace header (dynamic sampling context) names the same trace.
    assert [TRACE_ID] == [headers["trace"]["trace_id"] for headers in receiver.envelope_headers]


async def test_a_transaction_name_and_breadcrumbs_from_outside_the_request_stay_out(
    sentry: Any, receiver: Receiver, span_capture: Any
) -> None:
    import sentry_sdk

    # As sentry-sdk's MCP integration does when a tool runs with no request's scope,
    # and as a lifespan that logs does.
    with sentry_sdk.isolation_scope() as isolation:
        isolation.set_transaction_name("tools/call stale-from-lifespan", source="custom")
        sentry_sdk.get_current_scope().set_transaction_name("prompts/get stale", source="custom")
        sentry_sdk.add_breadcrumb(message="startup: connected to the database")
        isolation.set_tag("region", "eu-1")
        with pytest.raises(RuntimeError):
            await call(stack(failing_app, span_capture), secret_scope(), body_recorder())
        [event] = flushed(receiver)
        assert "/items/{item_id}" == event["transaction"]
        crumbs = [c.get("message") for c in event.get("breadcrumbs", {}).get("values", [])]
        assert "startup: connected to the database" not in crumbs
        assert "eu-1" == event["tags"]["region"]  # process-wide data stays
        # The process's own scopes keep their names: only the request's forks forget them.
        assert "prompts/get stale" == sentry_sdk.get_current_scope()._transaction


async def test_a_transaction_name_set_during_the_request_is_kept(
    sentry: Any, receiver: Receiver, span_capture: Any
) -> None:
    import sentry_sdk

    async def naming_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        sentry_sdk.get_current_scope().set_transaction_name("tools/call add", source="custom")
        await failing_app(scope, receive, send)

    with pytest.raises(RuntimeError):
        await call(stack(naming_app, span_capture), secret_scope(), body_recorder())
    [event] = flushed(receiver)
    assert "tools/call add" == event["transaction"]
    request = event["request"]
    assert ("POST", "http://api.example.org/items/42") == (request["method"], request["url"])
    assert "page=2&access_token=[Filtered]&api_key=[Filtered]" == request["query_string"]
    assert (FILTERED, "api.example.org") == (
        request["headers"]["authorization"],
        request["headers"]["host"],
    )


@pytest.mark.parametrize(
    "collection",
    [
        {"send_default_pii": False},
        {"send_default_pii": True},
        {"data_collection": {"user_info": True, "http_bodies": ["incoming_request"]}},
    ],
    ids=["default", "send_default_pii", "data_collection"],
)
async def test_no_planted_secret_leaves_the_process(
    receiver: Receiver, span_capture: Any, collection: dict[str, Any]
) -> None:
    with sentry_client(receiver.dsn, traces_sample_rate=1.0, **collection):
        with pytest.raises(RuntimeError):
            await call(stack(failing_app, span_capture), secret_scope(), body_recorder())
        [event] = flushed(receiver)

    raw = receiver.raw.decode("utf-8")
    assert "RuntimeError" == event["exception"]["values"][0]["type"]
    assert "req-0001" in raw  # the request id is not a secret and does arrive
    assert [] == [secret for secret in PLANTED if secret in raw]


async def test_the_exception_is_re_raised_unchanged(sentry: Any, receiver: Receiver) -> None:
    original = ValueError("bad")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise original

    with pytest.raises(ValueError) as raised:
        await call(SentryMiddleware(app), http_scope())

    assert original is raised.value
    assert (None, None, False) == (
        original.__cause__,
        original.__context__,
        original.__suppress_context__,
    )
    assert "app" == raised.traceback[-1].name
    assert 1 == len(flushed(receiver))


async def test_an_exception_captured_inside_the_app_gives_one_event(
    sentry: Any, receiver: Receiver
) -> None:
    """As sentry-sdk's framework integrations do: capture, then let it propagate."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            sentry_sdk.capture_exception(exc)
            raise

    with pytest.raises(KeyError):
        await call(SentryMiddleware(app), http_scope("/one"))
    events = flushed(receiver)
    assert ["KeyError"] == [event["exception"]["values"][-1]["type"] for event in events]
    assert "http://127.0.0.1:8000/one" == events[0]["request"]["url"]


async def test_one_event_without_sentrys_dedupe_integration(receiver: Receiver) -> None:
    """The middleware's own check, not DedupeIntegration, keeps it to one event."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            sentry_sdk.capture_exception(exc)
            raise

    with sentry_client(receiver.dsn, default_integrations=False):
        assert None is sentry_sdk.get_client().get_integration("dedupe")
        with pytest.raises(KeyError):
            await call(SentryMiddleware(app), http_scope())
        assert 1 == len(flushed(receiver))


async def test_a_captured_exception_wrapped_on_its_way_out_gives_one_event(
    sentry: Any, receiver: Receiver
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            sentry_sdk.capture_exception(exc)
            raise RuntimeError("wrapped") from exc

    with pytest.raises(RuntimeError):
        await call(SentryMiddleware(app), http_scope())
    assert 1 == len(flushed(receiver))


class HTTPException(Exception):  # named like Starlette's, Litestar's and werkzeug's
    def __init__(self, **attributes: Any) -> None:
        super().__init__("http")
        self.__dict__.update(attributes)


class NotFoundHTTPException(HTTPException):
    pass


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (HTTPException(status_code=404), 404),
        (HTTPException(code=401), 401),
        (HTTPException(status=409), 409),
        (NotFoundHTTPException(status_code=404), 404),
        (HTTPException(status_code=503), 503),
        (HTTPException(status_code="404"), None),
        (HTTPException(status_code=True), None),
        (HTTPException(status_code=42), None),
        (HTTPException(), None),
        (urllib.error.HTTPError("http://up", 404, "nf", {}, None), None),  # type: ignore[arg-type]
        (RuntimeError(), None),
    ],
)
def test_http_status_of_exceptions(exc: BaseException, expected: int | None) -> None:
    assert expected == http_status(exc)


@pytest.mark.parametrize(
    ("exc", "options", "reported"),
    [
        (HTTPException(status_code=404), {}, False),
        (HTTPException(code=400), {}, False),
        (HTTPException(status_code=503), {}, True),
        (urllib.error.HTTPError("http://up", 404, "nf", {}, None), {}, True),  # type: ignore[arg-type]
        (KeyError("k"), {"ignore_exceptions": [LookupError]}, False),
        (ValueError("v"), {"ignore_exceptions": [LookupError]}, True),
    ],
)
async def test_expected_errors_are_not_reported(
    sentry: Any, receiver: Receiver, exc: Exception, options: dict[str, Any], reported: bool
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise exc

    with pytest.raises(type(exc)):
        await call(SentryMiddleware(app, **options), http_scope())
    sentry_sdk.flush(timeout=5)
    if reported:
        wait_for(lambda: bool(receiver.events))
    assert reported == bool(receiver.events)


async def test_an_expected_error_captured_by_an_integration_is_dropped(
    sentry: Any, receiver: Receiver
) -> None:
    from sentry_sdk.utils import event_from_exception

    async def app(scope: Any, receive: Any, send: Any) -> None:
        exc = KeyError("k")
        event, hint = event_from_exception(exc, mechanism={"type": "starlette", "handled": False})
        sentry_sdk.capture_event(event, hint=hint)
        sentry_sdk.capture_exception(KeyError("explicit capture is kept"))
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await call(SentryMiddleware(app, ignore_exceptions=[KeyError]), http_scope())
    [event] = flushed(receiver)
    assert "'explicit capture is kept'" == event["exception"]["values"][0]["value"]


async def status_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers /status/<code> with that status."""
    scope[ROUTE_KEY] = "/status/{code}"
    status = int(scope["path"].rsplit("/", 1)[1])
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"x"})


async def test_a_5xx_without_exception_is_not_an_event_by_default(
    sentry: Any, receiver: Receiver
) -> None:
    recorder = await call(SentryMiddleware(status_app), http_scope("/status/503"))
    sentry_sdk.flush(timeout=5)
    assert (503, []) == (recorder.status, receiver.events)


async def test_capture_5xx_responses_reports_them(
    sentry: Any, receiver: Receiver, span_capture: Any
) -> None:
    app = stack(status_app, span_capture, capture_5xx_responses=True)
    await call(app, http_scope("/status/502", headers=[(b"x-request-id", b"req-5xx")]))
    await call(app, http_scope("/status/200"))  # not every response
    [event] = flushed(receiver)
    assert ("HTTP 502 response to GET /status/{code}", "req-5xx", "/status/{code}") == (
        event["message"],
        event["tags"]["request_id"],
        event["tags"]["http.route"],
    )


@pytest.mark.parametrize("nested", [False, True], ids=["alone", "inside-other-layers"])
async def test_capture_5xx_responses_sees_the_status_alone_and_nested(
    sentry: Any, receiver: Receiver, span_capture: Any, nested: bool
) -> None:
    """Alone the layer notes the status itself; nested, the outer layer's record has it."""
    if nested:
        app = stack(status_app, span_capture, capture_5xx_responses=True)
    else:
        app = SentryMiddleware(status_app, capture_5xx_responses=True)
    recorder = await call(app, http_scope("/status/503"))
    [event] = flushed(receiver)
    assert (503, "HTTP 503 response to GET /status/{code}") == (recorder.status, event["message"])


async def test_nested_layer_passes_the_outer_send_through(sentry: Any, span_capture: Any) -> None:
    """Inside another asgi_observe layer, the app gets that layer's send, not one more wrapper."""
    sends: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        sends.append(send)
        await status_app({**scope, "path": "/status/200"}, receive, send)

    class SendSpy:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            sends.append(send)
            await self.inner(scope, receive, send)

    await call(RequestIdMiddleware(SendSpy(SentryMiddleware(app))), http_scope())
    outer_send, app_send = sends
    assert outer_send is app_send


async def test_capture_5xx_responses_skips_requests_that_reported_an_exception(
    sentry: Any, receiver: Receiver
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        sentry_sdk.capture_exception(RuntimeError("handled by the framework"))
        await status_app({**scope, "path": "/status/500"}, receive, send)

    await call(SentryMiddleware(app, capture_5xx_responses=True), http_scope())
    events = flushed(receiver)
    assert ["RuntimeError"] == [event["exception"]["values"][0]["type"] for event in events]


async def test_websocket_exceptions_are_reported(sentry: Any, receiver: Receiver) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("ws")

    with pytest.raises(RuntimeError):
        await call(SentryMiddleware(app), websocket_scope("/ws"))
    [event] = flushed(receiver)
    assert ("ws://127.0.0.1:8000/ws", None) == (
        event["request"]["url"],
        event["request"].get("method"),
    )


async def test_lifespan_and_unknown_scopes_pass_straight_through(sentry: Any) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    for scope in ({"type": "lifespan"}, {"type": "future-thing"}):
        await SentryMiddleware(app)(scope, Recorder().receive, Recorder().send)
    assert [{"type": "lifespan"}, {"type": "future-thing"}] == seen
    assert all(RECORD_KEY not in scope for scope in seen)


async def test_without_an_active_client_requests_pass_through(receiver: Receiver) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        raise RuntimeError("no client")

    scope = http_scope()
    with pytest.raises(RuntimeError):
        await call(SentryMiddleware(app), scope)
    assert [scope] == seen and seen[0] is scope


async def test_concurrent_requests_keep_their_breadcrumbs_and_tags_apart(
    sentry: Any, receiver: Receiver
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        name = scope["path"].strip("/")
        for step in range(3):
            sentry_sdk.add_breadcrumb(message=f"{name}-{step}")
            sentry_sdk.set_tag("who", name)
            await asyncio.sleep(0)  # interleave with the other requests
        raise RuntimeError(name)

    middleware = SentryMiddleware(app)
    names = [f"r{index}" for index in range(8)]
    results = await asyncio.gather(
        *(call(middleware, http_scope(f"/{name}")) for name in names), return_exceptions=True
    )
    assert all(isinstance(result, RuntimeError) for result in results)
    events = flushed(receiver, len(names))
    seen = {
        event["exception"]["values"][0]["value"]: (
            event["tags"]["who"],
            [crumb["message"] for crumb in event["breadcrumbs"]["values"]],
        )
        for event in events
    }
    assert {name: (name, [f"{name}-0", f"{name}-1", f"{name}-2"]) for name in names} == seen
    assert None is sentry_sdk.get_isolation_scope()._tags.get("who")


async def test_scrubbing_runs_after_the_users_before_send(receiver: Receiver) -> None:
    def before_send(event: Any, hint: Any) -> Any:
        event.setdefault("extra", {})["copied_by_hook"] = f"Bearer {BEARER}"
        event["extra"]["hook_saw_the_exception"] = type(hint["exc_info"][1]).__name__
        return event

    with sentry_client(receiver.dsn, before_send=before_send):
        with pytest.raises(RuntimeError):
            await call(SentryMiddleware(failing_app), secret_scope(), body_recorder())
        [event] = flushed(receiver)
    assert {"copied_by_hook": FILTERED, "hook_saw_the_exception": "RuntimeError"} == {
        key: event["extra"][key] for key in ("copied_by_hook", "hook_saw_the_exception")
    }


async def test_a_before_send_that_drops_still_drops(receiver: Receiver) -> None:
    with sentry_client(receiver.dsn, before_send=lambda event, hint: None):
        with pytest.raises(RuntimeError):
            await call(SentryMiddleware(failing_app), secret_scope(), body_recorder())
        sentry_sdk.flush(timeout=5)
    assert [] == receiver.events


async def test_a_custom_scrubber_is_used(sentry: Any, receiver: Receiver) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        employee_ssn = "078-05-1120"  # noqa: F841 (a local sentry-sdk serialises)
        raise RuntimeError("x")

    scope = http_scope(headers=[(b"x-ssn", b"078-05-1120")])
    with pytest.raises(RuntimeError):
        await call(SentryMiddleware(app, scrubber=Scrubber(deny=["ssn"], replacement="***")), scope)
    [event] = flushed(receiver)
    assert "***" == event["request"]["headers"]["x-ssn"]
    assert "078-05-1120" not in receiver.raw.decode()


@pytest.mark.parametrize("delay", [None, 3.0], ids=["receiver-down", "receiver-slow"])
async def test_a_down_or_slow_receiver_does_not_slow_requests(delay: float | None) -> None:
    server = Receiver(delay=delay or 0.0).start() if delay else None
    dsn = server.dsn if server else f"http://public@127.0.0.1:{free_closed_port()}/1"
    workers_before = sentry_workers()
    try:
        with sentry_client(dsn, shutdown_timeout=0):
            middleware = SentryMiddleware(failing_app)
            started = time.perf_counter()
            for _ in range(20):
                with pytest.raises(RuntimeError):
                    await call(middleware, secret_scope(), body_recorder())
            elapsed = time.perf_counter() - started
            sentry_sdk.get_client().close(timeout=0)
    finally:
        if server:
            server.stop()
        # The 20 events closed with timeout=0 are still queued: sent (and failed) now.
        join_sentry_workers(sentry_workers() - workers_before)
    assert elapsed < 2.0, elapsed


def test_sentry_active_follows_the_client(receiver: Receiver) -> None:
    assert False is sentry_active()
    with sentry_client(receiver.dsn):
        assert True is sentry_active()
    assert False is sentry_active()
    with sentry_client(None):
        assert False is sentry_active()  # a client without a DSN sends nothing


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"ignore_exceptions": KeyError}, TypeError),
        ({"ignore_exceptions": [KeyError, "ValueError"]}, TypeError),
        ({"ignore_exceptions": [int]}, TypeError),
        ({"capture_5xx_responses": "yes"}, TypeError),
        ({"scrubber": object()}, TypeError),
        ({"route_resolver": "/x"}, TypeError),
    ],
)
def test_options_are_validated(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        SentryMiddleware(failing_app, **options)


def test_app_may_be_passed_by_keyword() -> None:
    assert failing_app is SentryMiddleware(app=failing_app).app


def test_only_a_bounded_body_is_kept() -> None:
    events = RequestEvents(
        http_scope(), None, Scrubber(), ErrorPolicy(()), lambda scope: None, sentry_sdk.get_client
    )  # type: ignore[arg-type]
    chunk = b"x" * (MAX_BODY_BYTES // 2)
    for _ in range(4):
        events.keep_body(chunk)
    events.keep_body(b"")
    events.keep_body(None)
    assert 2 == len(events._body or [])
