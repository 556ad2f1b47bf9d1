"""RequestIdMiddleware driven by hand-built ASGI messages."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from asgi_driver import Message, Recorder, call, http_scope, plain_app, websocket_scope
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_observe._core.record import RECORD_KEY, ensure_record, record_of
from asgi_observe.frameworks.routes import ROUTE_KEY
from asgi_observe.logs.request_id import (
    RequestIdMiddleware,
    generate_request_id,
    get_request_id,
    is_valid_request_id,
)

GENERATED = re.compile(r"[0-9a-f]{32}")
HEADER = b"x-request-id"


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != "asyncio":  # the event loop's own debug lines
            self.records.append(record)


@pytest.fixture
def all_logs() -> Iterator[list[logging.LogRecord]]:
    """Every record any logger writes, at every level."""
    root = logging.getLogger()
    handler, level = ListHandler(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(level)


def id_app(seen: list[str | None]) -> Any:
    """An app that notes get_request_id() and the record's id, then answers 200."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        record = record_of(scope)
        seen.append(get_request_id())
        seen.append(record.request_id if record else "no record")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def request(
    middleware: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[Recorder, list[bytes]]:
    recorder = await call(middleware, http_scope(headers=headers or []))
    return recorder, recorder.header(HEADER)


# --- which ids are accepted -----------------------------------------------------------

ACCEPTED = {
    "nginx $request_id": b"7f3c1e0a9b8d4c2e1f0a9b8c7d6e5f4a",
    "uuid with dashes": b"3f2504e0-4f89-41d3-9a0c-0305e82c3301",
    "uuid upper case": b"3F2504E0-4F89-41D3-9A0C-0305E82C3301",
    "uuid in braces": b"{3f2504e0-4f89-41d3-9a0c-0305e82c3301}",
    "uuid urn": b"urn:uuid:3f2504e0-4f89-41d3-9a0c-0305e82c3301",
    "ulid": b"01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "aws alb trace id": b"Root=1-67891233-abcdef012345678912345678",
    "heroku style": b"f9ed4675-f7ce-4a1e-9cd8-fa6a8d3d1e14",
    "single char": b"a",
    "128 chars": b"x" * 128,
    "all punctuation": b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
}


@pytest.mark.parametrize("incoming", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_valid_incoming_ids_are_used_and_echoed(incoming: bytes) -> None:
    seen: list[str | None] = []
    _, echoed = await request(RequestIdMiddleware(id_app(seen)), [(HEADER, incoming)])
    expected = incoming.decode("ascii")
    assert ([incoming], [expected, expected]) == (echoed, seen)


HOSTILE = {
    "5000 chars": b"a" * 5000,
    "129 chars": b"a" * 129,
    "crlf injection": b"abc\r\nSet-Cookie: session=stolen",
    "lone lf": b"abc\nx-evil: 1",
    "nul": b"abc\x00def",
    "tab": b"abc\tdef",
    "space inside": b"abc def",
    "del": b"abc\x7f",
    "utf-8 non-ascii": "héllo-wörld".encode(),
    "latin-1 byte": b"caf\xe9",
    "empty": b"",
    "single space": b" ",
    "escape sequence": b"\x1b[31mred",
}


@pytest.mark.parametrize("hostile", HOSTILE.values(), ids=HOSTILE.keys())
async def test_hostile_ids_are_replaced_and_never_echoed_or_logged(
    hostile: bytes, all_logs: list[logging.LogRecord]
) -> None:
    seen: list[str | None] = []
    app = RequestIdMiddleware(id_app(seen), access_log=True)
    recorder, echoed = await request(app, [(HEADER, hostile)])

    assert 1 == len(echoed)
    assert GENERATED.fullmatch(echoed[0].decode())
    assert [echoed[0].decode()] * 2 == seen
    if hostile.strip():
        assert all(hostile not in value for _, value in recorder.sent[0]["headers"])
        text = hostile.decode("latin-1")
        logged = [str(vars(record)) + record.getMessage() for record in all_logs]
        assert [] == [line for line in logged if text in line]


async def test_missing_header_gets_a_generated_id() -> None:
    seen: list[str | None] = []
    _, echoed = await request(RequestIdMiddleware(id_app(seen)))
    assert GENERATED.fullmatch(echoed[0].decode())
    assert [echoed[0].decode()] * 2 == seen


async def test_first_of_repeated_headers_wins() -> None:
    seen: list[str | None] = []
    await request(RequestIdMiddleware(id_app(seen)), [(HEADER, b"first"), (HEADER, b"second")])
    assert ["first", "first"] == seen


def test_generated_ids_are_unique_128_bit_hex() -> None:
    ids = {generate_request_id() for _ in range(100_000)}
    assert 100_000 == len(ids)
    assert all(GENERATED.fullmatch(i) for i in ids)


async def test_generated_ids_are_unique_per_request() -> None:
    middleware = RequestIdMiddleware(plain_app())
    echoed = [(await request(middleware))[1][0] for _ in range(2_000)]
    assert 2_000 == len(set(echoed))


@settings(max_examples=300, deadline=None)
@given(incoming=st.binary(max_size=300))
async def test_any_incoming_bytes_are_echoed_only_when_valid(incoming: bytes) -> None:
    """Property: the echoed id is the incoming value exactly when valid, else a new one."""
    _, echoed = await request(RequestIdMiddleware(plain_app()), [(HEADER, incoming)])
    valid = 1 <= len(incoming) <= 128 and all(0x21 <= byte <= 0x7E for byte in incoming)
    assert 1 == len(echoed)
    assert (echoed[0] == incoming) if valid else bool(GENERATED.fullmatch(echoed[0].decode()))


def test_default_validator_bounds() -> None:
    assert (True, True, False, False) == (
        is_valid_request_id("!"),
        is_valid_request_id("~" * 128),
        is_valid_request_id("~" * 129),
        is_valid_request_id("a\n"),
    )


# --- the response header --------------------------------------------------------------


async def test_echo_replaces_a_header_of_the_same_name_without_touching_the_app_list() -> None:
    app_headers = [(b"X-Request-ID", b"stale"), (b"content-type", b"text/plain")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": app_headers})
        await send({"type": "http.response.body", "body": b""})

    recorder, _ = await request(RequestIdMiddleware(app), [(HEADER, b"mine")])
    assert [(b"content-type", b"text/plain"), (HEADER, b"mine")] == recorder.sent[0]["headers"]
    assert [(b"X-Request-ID", b"stale"), (b"content-type", b"text/plain")] == app_headers


@pytest.mark.parametrize("container", [list, tuple])
async def test_echo_appends_the_header_without_touching_the_app_headers(container: Any) -> None:
    app_headers = container([(b"content-type", b"text/plain"), (b"content-length", b"0")])
    app_message = {"type": "http.response.start", "status": 200, "headers": app_headers}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(app_message)
        await send({"type": "http.response.body", "body": b""})

    recorder, _ = await request(RequestIdMiddleware(app), [(HEADER, b"mine")])
    assert [
        (b"content-type", b"text/plain"),
        (b"content-length", b"0"),
        (HEADER, b"mine"),
    ] == recorder.sent[0]["headers"]
    assert container([(b"content-type", b"text/plain"), (b"content-length", b"0")]) == app_headers
    assert app_headers is app_message["headers"]


async def test_custom_header_name() -> None:
    seen: list[str | None] = []
    middleware = RequestIdMiddleware(id_app(seen), header_name="X-Correlation-ID")
    recorder = await call(
        middleware, http_scope(headers=[(b"x-correlation-id", b"corr"), (HEADER, b"other")])
    )
    assert (["corr", "corr"], [b"corr"], []) == (
        seen,
        recorder.header(b"x-correlation-id"),
        recorder.header(HEADER),
    )


@pytest.mark.parametrize("name", [b"X-Request-ID", b"X-REQUEST-ID", b"x-Request-Id"])
async def test_mixed_case_incoming_header_name_is_read(name: bytes) -> None:
    """The ASGI spec asks servers to lower-case names but does not require it."""
    seen: list[str | None] = []
    recorder = await call(
        RequestIdMiddleware(id_app(seen)),
        http_scope(headers=[(b"content-type", b"text/plain"), (name, b"from-client")]),
    )
    assert (["from-client", "from-client"], [b"from-client"]) == (seen, recorder.header(HEADER))


async def test_other_messages_pass_through_untouched() -> None:
    sent: list[Message] = [
        {"type": "http.response.start", "status": 200, "headers": [], "trailers": True},
        {"type": "http.response.body", "body": b"a", "more_body": True},
        {"type": "http.response.body", "body": b"b"},
        {"type": "http.response.trailers", "headers": [(b"x-t", b"1")]},
        {"type": "http.future.message", "anything": 1},
    ]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for message in sent:
            await send(message)

    recorder, _ = await request(RequestIdMiddleware(app))
    assert sent[1:] == recorder.sent[1:]
    assert all(a is b for a, b in zip(sent[1:], recorder.sent[1:], strict=True))


# --- context and the shared record ----------------------------------------------------


async def test_request_id_is_unset_after_the_request_even_when_the_app_raises() -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        assert get_request_id() is not None
        raise KeyError("app bug")

    await request(RequestIdMiddleware(plain_app()))
    assert get_request_id() is None
    with pytest.raises(KeyError):
        await request(RequestIdMiddleware(failing))
    assert get_request_id() is None


async def test_the_id_is_stored_in_the_shared_record_of_an_outer_layer() -> None:
    scope, record = ensure_record(http_scope(headers=[(HEADER, b"shared")]))
    seen: list[str | None] = []
    await call(RequestIdMiddleware(id_app(seen)), scope)
    assert ("shared", ["shared", "shared"]) == (record.request_id, seen)


async def test_nested_layers_agree_on_one_id_and_one_header() -> None:
    seen: list[str | None] = []
    nested = RequestIdMiddleware(RequestIdMiddleware(id_app(seen)))
    _, echoed = await request(nested)
    assert 1 == len(echoed)
    assert [echoed[0].decode()] * 2 == seen


async def test_other_scope_types_pass_straight_through() -> None:
    received: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append(scope)
        received.append(get_request_id())

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await RequestIdMiddleware(app)(scope, Recorder().receive, Recorder().send)
    assert [scope, None] == received
    assert received[0] is scope and RECORD_KEY not in scope


# --- custom validators and generators -------------------------------------------------


async def test_custom_validator_decides() -> None:
    middleware = RequestIdMiddleware(plain_app(), validator=lambda v: v.startswith("ok-"))
    (_, accepted), (_, rejected) = (
        await request(middleware, [(HEADER, b"ok-1")]),
        await request(middleware, [(HEADER, b"nope")]),
    )
    assert [b"ok-1"] == accepted
    assert GENERATED.fullmatch(rejected[0].decode())


async def test_a_lax_validator_still_cannot_let_control_characters_through() -> None:
    middleware = RequestIdMiddleware(plain_app(), validator=lambda v: True)
    _, echoed = await request(middleware, [(HEADER, b"a\r\nb")])
    assert GENERATED.fullmatch(echoed[0].decode())


async def test_a_failing_validator_rejects_and_the_request_is_served() -> None:
    def broken(value: str) -> bool:
        raise RuntimeError("validator bug")

    recorder, echoed = await request(
        RequestIdMiddleware(plain_app(), validator=broken), [(HEADER, b"x")]
    )
    assert 200 == recorder.status
    assert GENERATED.fullmatch(echoed[0].decode())


async def test_custom_generator() -> None:
    _, echoed = await request(RequestIdMiddleware(plain_app(), generator=lambda: "gen-1"))
    assert [b"gen-1"] == echoed


@pytest.mark.parametrize(
    "generator",
    [lambda: 1 / 0, lambda: "bad\r\nid", lambda: "", lambda: 42, lambda: "ünï"],
    ids=["raises", "crlf", "empty", "not a str", "non-ascii"],
)
async def test_a_failing_generator_falls_back_and_the_request_is_served(
    generator: Any, all_logs: list[logging.LogRecord]
) -> None:
    recorder, echoed = await request(RequestIdMiddleware(plain_app(), generator=generator))
    assert 200 == recorder.status
    assert GENERATED.fullmatch(echoed[0].decode())
    assert ["asgi_observe.request_id"] == [r.name for r in all_logs]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"header_name": ""}, ValueError),
        ({"header_name": "X Request"}, ValueError),
        ({"header_name": "x-id:"}, ValueError),
        ({"header_name": "x-ïd"}, ValueError),
        ({"header_name": b"x-id"}, ValueError),
        ({"validator": "strict"}, TypeError),
        ({"generator": None}, TypeError),
        ({"access_log": "yes"}, TypeError),
        ({"access_log": logging.LoggerAdapter(logging.getLogger("x"))}, TypeError),
        ({"error_response": 1}, TypeError),
        ({"route_resolver": "/items"}, TypeError),
    ],
)
def test_options_are_validated(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match=next(iter(options))):
        RequestIdMiddleware(plain_app(), **options)


def test_app_may_be_passed_by_keyword() -> None:
    app = plain_app()
    assert app is RequestIdMiddleware(app=app).app


# --- error responses ------------------------------------------------------------------


def raising_app(error: BaseException, *, start_first: bool = False) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if start_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise error

    return app


async def test_error_response_sends_500_with_the_id_then_reraises() -> None:
    error = RuntimeError("app bug")
    middleware = RequestIdMiddleware(raising_app(error), error_response=True)
    recorder = Recorder()
    with pytest.raises(RuntimeError) as raised:
        await call(middleware, http_scope(headers=[(HEADER, b"err-1")]), recorder)
    assert error is raised.value
    assert [
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"21"),
                (b"connection", b"close"),  # the server closes after the re-raise
                (HEADER, b"err-1"),
            ],
        },
        {"type": "http.response.body", "body": b"Internal Server Error"},
    ] == recorder.sent


async def test_without_error_response_the_exception_passes_alone() -> None:
    recorder = Recorder()
    with pytest.raises(RuntimeError):
        await call(RequestIdMiddleware(raising_app(RuntimeError())), http_scope(), recorder)
    assert [] == recorder.sent


async def test_error_after_the_response_started_is_only_reraised() -> None:
    middleware = RequestIdMiddleware(
        raising_app(RuntimeError(), start_first=True), error_response=True
    )
    recorder = Recorder()
    with pytest.raises(RuntimeError):
        await call(middleware, http_scope(), recorder)
    assert ["http.response.start"] == [m["type"] for m in recorder.sent]


async def test_an_error_after_a_complete_response_is_logged_not_reraised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 13: re-raised, the server would close a keep-alive connection the client may
    already be reusing; the response is complete, so the error is logged instead."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"framework 500"})
        raise RuntimeError("raised after answering")

    recorder = Recorder()
    with caplog.at_level(logging.ERROR, logger="asgi_observe.request_id"):
        await call(RequestIdMiddleware(app, error_response=True), http_scope(), recorder)
    assert [500] == [m["status"] for m in recorder.sent if m["type"] == "http.response.start"]
    (record,) = [r for r in caplog.records if r.name == "asgi_observe.request_id"]
    assert record.exc_info is not None
    assert "raised after answering" == str(record.exc_info[1])
    with pytest.raises(RuntimeError):  # without error_response, as before: re-raised
        await call(RequestIdMiddleware(app), http_scope())


async def test_a_failing_error_send_still_reraises_the_app_error() -> None:
    async def gone(message: Message) -> None:
        raise OSError("client gone")

    error = RuntimeError("app bug")
    middleware = RequestIdMiddleware(raising_app(error), error_response=True)
    with pytest.raises(RuntimeError) as raised:
        await middleware(http_scope(), Recorder().receive, gone)
    assert error is raised.value


async def test_cancellation_sends_no_error_response() -> None:
    middleware = RequestIdMiddleware(raising_app(asyncio.CancelledError()), error_response=True)
    recorder = Recorder()
    with pytest.raises(asyncio.CancelledError):
        await call(middleware, http_scope(), recorder)
    assert [] == recorder.sent


# --- websockets -----------------------------------------------------------------------


async def test_websocket_accept_carries_the_id() -> None:
    seen: list[str | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        seen.append(get_request_id())
        await send({"type": "websocket.accept", "headers": [(b"x-request-id", b"stale")]})
        await send({"type": "websocket.close", "code": 1000})

    recorder = Recorder([{"type": "websocket.connect"}])
    await call(RequestIdMiddleware(app), websocket_scope(headers=[(HEADER, b"ws-1")]), recorder)
    assert (["ws-1"], [b"ws-1"]) == (seen, recorder.header(HEADER))


async def test_websocket_denial_response_carries_the_id() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no"})

    recorder = Recorder([{"type": "websocket.connect"}])
    await call(RequestIdMiddleware(app), websocket_scope(headers=[(HEADER, b"ws-2")]), recorder)
    assert [(HEADER, b"ws-2")] == recorder.sent[0]["headers"]


# --- access log -----------------------------------------------------------------------


def access_records(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    return [
        {
            key: getattr(record, key)
            for key in ("method", "route", "status", "request_id", "trace_id", "span_id")
        }
        | {"message": record.getMessage(), "level": record.levelname}
        for record in records
        if record.name == "asgi_observe.access"
    ]


async def test_access_log_writes_one_record_per_request(all_logs: list[Any]) -> None:
    middleware = RequestIdMiddleware(plain_app(status=404), access_log=True)
    await call(middleware, http_scope("/items/9", headers=[(HEADER, b"acc-1")]))
    (entry,) = access_records(all_logs)
    assert re.fullmatch(r"GET /items/9 404 \d+\.\d\dms", entry.pop("message"))
    assert {
        "method": "GET",
        "route": None,
        "status": 404,
        "request_id": "acc-1",
        "trace_id": None,
        "span_id": None,
        "level": "INFO",
    } == entry
    (record,) = [r for r in all_logs if r.name == "asgi_observe.access"]
    assert isinstance(record.duration_ms, float) and record.duration_ms >= 0


async def test_access_log_uses_the_route_template(all_logs: list[Any]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope[ROUTE_KEY] = "/items/{item_id}"
        await plain_app()(scope, receive, send)

    await call(RequestIdMiddleware(app, access_log=True), http_scope("/items/9"))
    (entry,) = access_records(all_logs)
    assert "/items/{item_id}" == entry["route"]


async def test_access_log_uses_a_custom_route_resolver(all_logs: list[Any]) -> None:
    middleware = RequestIdMiddleware(
        plain_app(), access_log=True, route_resolver=lambda scope: "/custom/{x}"
    )
    await call(middleware, http_scope("/custom/1"))
    assert ["/custom/{x}"] == [e["route"] for e in access_records(all_logs)]


async def test_access_log_is_off_by_default(all_logs: list[Any]) -> None:
    await call(RequestIdMiddleware(plain_app()), http_scope())
    assert [] == access_records(all_logs)


async def test_access_log_to_a_given_logger(all_logs: list[Any]) -> None:
    custom = logging.getLogger("tests.my_access")
    await call(RequestIdMiddleware(plain_app(), access_log=custom), http_scope())
    assert ["tests.my_access"] == [r.name for r in all_logs]


async def test_access_log_for_an_app_error_says_500(all_logs: list[Any]) -> None:
    middleware = RequestIdMiddleware(raising_app(RuntimeError()), access_log=True)
    with pytest.raises(RuntimeError):
        await call(middleware, http_scope())
    assert [500] == [e["status"] for e in access_records(all_logs)]


async def test_access_log_with_error_response_is_written_once(all_logs: list[Any]) -> None:
    middleware = RequestIdMiddleware(
        raising_app(RuntimeError()), access_log=True, error_response=True
    )
    with pytest.raises(RuntimeError):
        await call(middleware, http_scope())
    assert [500] == [e["status"] for e in access_records(all_logs)]


async def test_access_log_for_a_websocket(all_logs: list[Any]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    recorder = Recorder([{"type": "websocket.connect"}])
    await call(RequestIdMiddleware(app, access_log=True), websocket_scope("/ws"), recorder)
    assert [("WEBSOCKET", 101)] == [(e["method"], e["status"]) for e in access_records(all_logs)]


async def test_a_failing_access_log_never_breaks_the_response(all_logs: list[Any]) -> None:
    class Broken(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            raise RuntimeError("filter bug")

    access = logging.getLogger("tests.broken_access")
    access.addFilter(Broken())
    recorder = await call(RequestIdMiddleware(plain_app(), access_log=access), http_scope())
    assert 200 == recorder.status


async def test_access_log_respects_the_logger_level(all_logs: list[Any]) -> None:
    access = logging.getLogger("tests.quiet_access")
    access.setLevel(logging.WARNING)
    await call(RequestIdMiddleware(plain_app(), access_log=access), http_scope())
    assert [] == [r for r in all_logs if r.name == "tests.quiet_access"]
