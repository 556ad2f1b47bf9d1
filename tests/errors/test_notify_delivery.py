"""Notifications end to end: a real stack, a local Telegram/Slack stand-in on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from chat_receiver import TOKEN, ChatReceiver, chat_receiver, closed_port_url
from notify_helpers import (
    CONTEXT_SECRET,
    LOCAL_SECRET,
    SECRET_HEADERS,
    SECRET_QUERY,
    SECRETS,
    clean_globals,
    get_many,
    notifier_for,
)
from test_notify_format import parse_telegram

from asgi_observe import observe
from asgi_observe.errors.notify import (
    Notifier,
    NotifyOptions,
    SlackDestination,
    TelegramDestination,
    report_error,
)
from asgi_observe.setup.lifespan import LifespanMiddleware

ROUTE = "/orders/{order_id}"


@pytest.fixture(autouse=True)
def _globals() -> Iterator[None]:
    with clean_globals():
        yield


@pytest.fixture
def receiver() -> Iterator[ChatReceiver]:
    with chat_receiver() as found:
        yield found


async def failing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    password = LOCAL_SECRET
    headers = dict(scope["headers"])
    auth = headers.get(b"authorization", b"").decode()
    order = scope["path"].rsplit("/", 1)[-1]
    if order.startswith("ok"):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    raise RuntimeError(f"payment <{order}> & co failed: {auth} {password}")


def stack(notifier: Notifier, span_capture: Any, app: Any = failing_app, **kwargs: Any) -> Any:
    return observe(
        app,
        notify=notifier,
        configure=False,
        metrics=False,
        tracer_provider=span_capture.provider,
        route_resolver=lambda scope: ROUTE,
        **kwargs,
    )


def by_path(receiver: ChatReceiver, part: str) -> list[Any]:
    return receiver.bodies(part)


async def test_telegram_and_slack_get_the_documented_message(
    receiver: ChatReceiver, span_capture: Any
) -> None:
    notifier = notifier_for(receiver)
    [response] = await get_many(
        stack(notifier, span_capture),
        [f"/orders/42?{SECRET_QUERY}"],
        headers={**SECRET_HEADERS, "x-request-id": "req-7"},
    )
    assert notifier.force_flush(5000)

    [span] = span_capture.spans
    trace_id = format(span.context.trace_id, "032x")
    [telegram] = by_path(receiver, "/sendMessage")
    assert (-1001234567890, "HTML") == (telegram["chat_id"], telegram["parse_mode"])
    parsed = parse_telegram(telegram["text"])
    shown = "".join(parsed.text)
    assert 500 == response.status_code
    for fact in (
        "🔴 RuntimeError in checkout (production, 1.4.2)",
        "payment <42> & co failed: [Filtered] [Filtered]",
        f"GET {ROUTE} → 500",
        "request id: req-7",
        f"trace: {trace_id}",
        'in failing_app\n  raise RuntimeError(f"payment <{order}> & co failed: {auth} {password}")',
    ):
        assert fact in shown
    assert [f"https://tempo.example/trace/{trace_id}"] == parsed.hrefs
    assert "/orders/42" not in shown  # the route template, never the raw path
    [slack] = by_path(receiver, "/slack/")
    assert slack["text"].startswith("🔴 *RuntimeError* in checkout (production, 1.4.2)\n")
    assert "payment &lt;42&gt; &amp; co failed" in slack["text"]
    assert f"<https://tempo.example/trace/{trace_id}|{trace_id}>" in slack["text"]


async def test_each_chat_and_forum_topic_gets_its_own_message(receiver: ChatReceiver) -> None:
    notifier = Notifier(
        [
            TelegramDestination(TOKEN, -100111, api_url=receiver.url),
            TelegramDestination(TOKEN, "@ops_channel", thread_id=17, api_url=receiver.url),
        ]
    )
    assert report_error(ValueError("x"), notifier=notifier)
    assert notifier.force_flush(5000)
    got = {(b["chat_id"], b.get("message_thread_id")) for b in receiver.bodies()}
    assert {(-100111, None), ("@ops_channel", 17)} == got


def counted(payloads: list[dict[str, Any]]) -> int:
    """Occurrences the messages account for: 1 + repeats for a first message, the count
    for a repeat summary or a suppressed count."""
    return sum(p["repeats"] + (p["kind"] not in ("repeats", "suppressed")) for p in payloads)


async def test_1000_concurrent_failures_of_one_error_give_one_message_and_one_summary(
    receiver: ChatReceiver, span_capture: Any
) -> None:
    notifier = notifier_for(receiver, webhook=True)
    responses = await get_many(stack(notifier, span_capture), ["/orders/1"] * 1000)
    assert {500} == {r.status_code for r in responses}
    await asyncio.sleep(0.3)  # anything sent by now was sent during the storm
    assert 3 == len(receiver.posted)  # one message on each of the three destinations
    assert notifier.force_flush(5000)  # the final tick sends the pending repeat count

    hooks = by_path(receiver, "/hook")
    assert [("exception", 0), ("repeats", 999)] == [(p["kind"], p["repeats"]) for p in hooks]
    assert 1000 == counted(hooks)
    texts = [b["text"] for b in by_path(receiver, "/sendMessage")]
    assert 2 == len(texts)
    assert "repeated 999 more times" in texts[1]


async def test_1000_concurrent_failures_over_50_errors_hit_the_rate_limit_once(
    receiver: ChatReceiver, span_capture: Any
) -> None:
    notifier = notifier_for(receiver, webhook=True, rate_limit=20)
    app_by_route = observe(
        failing_app,
        notify=notifier,
        configure=False,
        metrics=False,
        tracer_provider=span_capture.provider,
        route_resolver=lambda scope: scope["path"],
    )
    paths = [f"/orders/{n % 50}" for n in range(1000)]
    await get_many(app_by_route, paths)
    assert notifier.force_flush(5000)

    hooks = by_path(receiver, "/hook")
    assert 21 == len(hooks)
    assert ["exception"] * 20 + ["suppressed"] == [p["kind"] for p in hooks]
    assert "980 more errors suppressed" == hooks[-1]["title"]
    assert 1000 == counted(hooks)
    assert 21 == len(by_path(receiver, "/sendMessage"))
    assert "980 more errors suppressed" in by_path(receiver, "/sendMessage")[-1]["text"]


async def test_telegram_429_retry_after_is_waited_out(receiver: ChatReceiver) -> None:
    too_many = {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    receiver.script.append((429, {"Content-Type": "application/json"}, too_many))
    notifier = notifier_for(receiver, only="telegram")
    assert report_error(ValueError("rate limited once"), notifier=notifier)
    assert notifier.force_flush(10_000)

    first, second = receiver.posted
    assert second.at - first.at >= 1.0
    assert first.body == second.body
    assert {"sent": 1, "failed": 0} == {
        k: v
        for k, v in notifier.stats()["telegram chat -1001234567890"].items()
        if k != "pending" and k != "dropped"
    }


async def test_slack_429_retry_after_header_is_waited_out(receiver: ChatReceiver) -> None:
    receiver.script.append((429, {"Retry-After": "1"}, "rate_limited"))
    notifier = notifier_for(receiver, only="slack")
    assert report_error(ValueError("slack rate limited once"), notifier=notifier)
    assert notifier.force_flush(10_000)
    first, second = receiver.posted
    assert second.at - first.at >= 1.0


async def test_other_4xx_is_not_retried_and_logged_once(
    receiver: ChatReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    chat_not_found = (
        400,
        {},
        {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
    )
    receiver.script.extend([chat_not_found] * 3)
    notifier = notifier_for(receiver, only="telegram")
    with caplog.at_level(logging.DEBUG):
        for exc in (ValueError("a"), KeyError("b"), TypeError("c")):  # three fingerprints
            report_error(exc, notifier=notifier)
        assert notifier.force_flush(5000)
    assert 3 == len(receiver.posted)  # one attempt each
    warnings = [r.getMessage() for r in caplog.records if r.name == "asgi_observe.errors.notify"]
    assert 1 == len(warnings)
    assert "HTTP 400: Bad Request: chat not found (check the chat id" in warnings[0]
    assert "not retried" in warnings[0]
    assert 3 == notifier.stats()["telegram chat -1001234567890"]["failed"]


async def time_requests(app: Any, count: int) -> list[float]:
    durations = []
    for n in range(count):
        start = time.perf_counter()
        await get_many(app, [f"/orders/{n}"])
        durations.append(time.perf_counter() - start)
    return durations


def dead_url(receiver: ChatReceiver, failure: str) -> str:
    if failure == "never answers":
        receiver.hang()
        return f"{receiver.url}/slack/T/B/X"
    return f"{closed_port_url()}/slack/T/B/X"


def with_slack(url: str, span_capture: Any, **options: Any) -> tuple[Any, Notifier]:
    notifier = Notifier([SlackDestination(url)], options=NotifyOptions(timeout=3.0, **options))
    app = observe(
        failing_app, notify=notifier, configure=False, metrics=False,
        tracer_provider=span_capture.provider, route_resolver=lambda scope: scope["path"],
    )  # fmt: skip
    return app, notifier


async def compare(apps: dict[str, Any], rounds: int = 5, count: int = 40) -> dict[str, float]:
    """Median latency of each app, measured in interleaved rounds (the machine is shared)."""
    for app in apps.values():
        await time_requests(app, 10)  # warm up
    found: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            found[name] += await time_requests(app, count)
    assert all(max(durations) < 0.5 for durations in found.values())  # never the 3 s timeout
    return {name: statistics.median(durations) for name, durations in found.items()}


@pytest.mark.parametrize("failure", ["refused", "never answers"])
async def test_a_dead_destination_costs_the_requests_nothing(
    receiver: ChatReceiver, span_capture: Any, failure: str
) -> None:
    """Requests that all fail, with every failure notified (no deduplication), to a
    destination that refuses connections or accepts them and never answers: as fast as
    the same stack notifying a healthy destination."""
    with chat_receiver() as healthy:
        healthy_app, healthy_notifier = with_slack(
            f"{healthy.url}/slack/T/B/X", span_capture, dedup_window=0, rate_limit=10_000
        )
        dead_app, dead_notifier = with_slack(
            dead_url(receiver, failure), span_capture, dedup_window=0, rate_limit=10_000
        )
        medians = await compare({"healthy": healthy_app, "dead": dead_app})
        healthy_notifier.close(0)
        dead_notifier.close(0)
    assert medians["dead"] < medians["healthy"] * 1.5 + 0.001, medians
    assert 0 == dead_notifier.stats()[dead_notifier.destinations[0].label]["sent"]


@pytest.mark.parametrize("failure", ["refused", "never answers"])
async def test_with_the_defaults_a_dead_destination_costs_nothing_next_to_no_notifications(
    receiver: ChatReceiver, span_capture: Any, failure: str
) -> None:
    """The same failing requests without the layer, and with it (default deduplication
    and rate limit) aimed at a dead destination."""
    dead_app, notifier = with_slack(dead_url(receiver, failure), span_capture)
    without = observe(
        failing_app, notify=False, configure=False, metrics=False,
        tracer_provider=span_capture.provider, route_resolver=lambda scope: "/orders/{n}",
    )  # fmt: skip
    medians = await compare({"without": without, "dead": dead_app})
    notifier.close(0)
    assert medians["dead"] < medians["without"] * 1.5 + 0.0005, medians


async def test_a_full_queue_drops_and_counts(receiver: ChatReceiver) -> None:
    receiver.hang()
    notifier = Notifier(
        [SlackDestination(f"{receiver.url}/slack/T/B/X")],
        options=NotifyOptions(dedup_window=0, rate_limit=1000, queue_size=5, timeout=2.0),
    )
    for n in range(50):
        report_error(ValueError(n), notifier=notifier)
    assert False is notifier.force_flush(300)  # builds done; the destination never answers
    stats = notifier.stats()["slack webhook (127.0.0.1)"]
    assert 50 == stats["dropped"] + stats["pending"]
    assert stats["pending"] <= 6  # the queue, and the one being sent
    notifier.close(0)


async def test_shutdown_flushes_the_queue_before_answering_the_server(
    receiver: ChatReceiver,
) -> None:
    receiver.delay = 0.2
    notifier = notifier_for(receiver, only="telegram", dedup_window=0)
    sent: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        for n in range(4):
            report_error(ValueError(f"late error {n}"), notifier=notifier)
        await send({"type": "lifespan.shutdown.complete"})

    events = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> Any:
        return next(events)

    async def send(message: Any) -> None:
        sent.append(f"{message['type']} after {len(receiver.posted)} messages")

    await LifespanMiddleware(app, flush_also=[notifier], flush_timeout=5)(
        {"type": "lifespan"}, receive, send
    )
    assert [
        "lifespan.startup.complete after 0 messages",
        "lifespan.shutdown.complete after 4 messages",
    ] == sent


async def test_shutdown_flush_stays_within_its_bound_when_the_destination_hangs(
    receiver: ChatReceiver,
) -> None:
    receiver.hang()
    notifier = notifier_for(receiver, only="slack", timeout=10.0)
    report_error(ValueError("never delivered"), notifier=notifier)
    start = time.monotonic()
    assert False is notifier.force_flush(500)
    assert time.monotonic() - start < 1.0
    notifier.close(0)


async def test_no_planted_secret_or_token_reaches_a_chat_a_log_line_or_a_repr(
    receiver: ChatReceiver, span_capture: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The destination misbehaves too: its error text repeats the token, as a proxy might.
    echo = {"ok": False, "error_code": 401, "description": f"Unauthorized for bot{TOKEN}"}
    receiver.script.append((401, {}, echo))
    notifier = notifier_for(
        receiver, webhook=True, dedup_window=0, events=frozenset({"exceptions", "logs"})
    )

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/orders/logged":
            password = LOCAL_SECRET
            logging.getLogger("tests.app").error("cannot charge with %s", password)
        try:
            await failing_app(scope, receive, send)
        except RuntimeError as exc:
            if scope["path"] == "/orders/manual":
                context = {"session_token": CONTEXT_SECRET, "order": 7}
                report_error(exc, additional_context=context)
            raise

    with caplog.at_level(logging.DEBUG):
        await get_many(
            stack(notifier, span_capture, app=app),
            [f"/orders/{name}?{SECRET_QUERY}" for name in ("plain", "manual", "logged")],
            headers=SECRET_HEADERS,
        )
        assert notifier.force_flush(5000)

    raw = b"".join(p.raw for p in receiver.posted).decode()
    assert 4 * 3 == len(receiver.posted)  # 4 messages (one logged) to 3 destinations
    assert "session_token" in raw and "cannot charge with [Filtered]" in raw
    ours = [r for r in caplog.records if r.name.startswith("asgi_observe")]
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in ours)
    assert "Unauthorized for bot[Filtered]" in logged
    shown = [
        logged,
        repr(notifier),
        str(notifier.stats()),
        *(repr(d) for d in notifier.destinations),
    ]
    for secret in SECRETS:
        if secret != TOKEN:  # the token is in Telegram's URL path, never in a body
            assert secret not in raw
        assert all(secret not in text for text in shown)
    assert all("XXXXSECRETPATH" not in text for text in shown)


async def test_report_error_shares_deduplication_with_the_unhandled_path(
    receiver: ChatReceiver, span_capture: Any
) -> None:
    notifier = notifier_for(receiver, webhook=True)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await failing_app(scope, receive, send)
        except RuntimeError as exc:
            assert report_error(exc, level="warning", additional_context={"order": 7})
            raise  # the same exception: no second message

    await get_many(stack(notifier, span_capture, app=app), ["/orders/3"])
    assert notifier.force_flush(5000)
    [hook] = by_path(receiver, "/hook")
    assert ("manual", "warning", {"order": "7"}) == (hook["kind"], hook["level"], hook["context"])
    assert ("GET", ROUTE, None) == (  # reported before any response: no status yet
        hook["request"]["method"],
        hook["request"]["route"],
        hook["request"]["status"],
    )


async def test_report_error_without_a_notifier_is_a_no_op() -> None:
    assert False is report_error(ValueError("nobody listens"))


async def test_5xx_without_exception_and_error_logs_when_asked(
    receiver: ChatReceiver, span_capture: Any
) -> None:
    notifier = notifier_for(receiver, webhook=True, events=frozenset({"exceptions", "5xx", "logs"}))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/log":
            logging.getLogger("tests.app").error("stock sync failed for %s", "sku-1")
        try:
            raise KeyError("handled here")
        except KeyError:
            if scope["path"] == "/logged-exception":
                logging.getLogger("tests.app").exception("lookup failed")
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"down"})

    paths = ["/plain", "/log", "/logged-exception"]
    await get_many(stack(notifier, span_capture, app=app), paths)
    assert notifier.force_flush(5000)
    hooks = sorted(by_path(receiver, "/hook"), key=lambda p: p["kind"])
    assert [
        ("log", "ERROR logged by tests.app"),
        ("log", "KeyError"),
        ("status", "HTTP 503"),
    ] == sorted((p["kind"], p["title"]) for p in hooks)
    status = next(p for p in hooks if p["kind"] == "status")
    assert f"GET {ROUTE} answered 503 without raising an exception" == status["message"]
    logged = next(p for p in hooks if p["title"] == "ERROR logged by tests.app")
    assert "stock sync failed for sku-1" == logged["message"]


def fail_and_report(exc: Exception, notifier: Notifier) -> None:
    try:
        raise exc
    except Exception as caught:
        report_error(caught, notifier=notifier)


def test_counts_stay_exact_when_1000_errors_come_from_16_threads(receiver: ChatReceiver) -> None:
    """report_error from worker threads (sync handlers run in a thread pool)."""
    notifier = notifier_for(receiver, webhook=True, rate_limit=5)
    errors = [ValueError, KeyError, TypeError, OSError, LookupError, ArithmeticError, EOFError]
    barrier = threading.Barrier(16)

    def work(worker: int) -> None:
        barrier.wait()
        for n in range(worker, 1000, 16):
            fail_and_report(errors[n % len(errors)](n), notifier)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert notifier.force_flush(5000)
    hooks = by_path(receiver, "/hook")
    assert 1000 == counted(hooks)
    assert 5 == sum(p["kind"] == "manual" for p in hooks)
    assert "suppressed" == hooks[-1]["kind"]
