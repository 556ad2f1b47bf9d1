"""deliver(): retries, backoff and 429 waits, driven by a scripted send (no network)."""

from __future__ import annotations

import email.utils
import time
import urllib.error
from collections.abc import Callable
from typing import Any

import pytest

from asgi_observe.errors.notify.destinations import (
    DiscordDestination,
    SlackDestination,
    TelegramDestination,
)
from asgi_observe.errors.notify.transport import (
    MAX_RETRY_AFTER,
    Outgoing,
    Response,
    backoff,
    deliver,
    retry_after_header,
)

TOKEN = "42:unit-test-TOKEN-value"
OUTGOING = Outgoing("http://127.0.0.1:9/x", b"{}", {})


def scripted(*answers: Response | BaseException) -> Callable[[Outgoing, float], Response]:
    queue = list(answers)

    def send(outgoing: Outgoing, timeout: float) -> Response:
        answer = queue.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return send


def telegram_429(seconds: Any) -> Response:
    body = (
        b'{"ok": false, "error_code": 429, "parameters": {"retry_after": %s}}'
        % str(seconds).encode()
    )
    return Response(429, {}, body)


OK_TELEGRAM = Response(200, {}, b'{"ok": true, "result": {}}')
OK = Response(200, {}, b"ok")


def run(
    target: Any, *answers: Response | BaseException, retries: int = 3
) -> tuple[Any, list[float]]:
    sleeps: list[float] = []
    result = deliver(
        target, OUTGOING, timeout=1.0, retries=retries, sleep=sleeps.append, send=scripted(*answers)
    )
    return result, sleeps


def test_telegram_retry_after_is_waited() -> None:
    result, sleeps = run(TelegramDestination(TOKEN, 1), telegram_429(7), OK_TELEGRAM)
    assert (True, 2, [7.0]) == (result.ok, result.attempts, sleeps)


def test_discord_retry_after_in_the_body_and_slack_in_the_header() -> None:
    discord = Response(429, {}, b'{"message": "You are being rate limited.", "retry_after": 0.25}')
    result, sleeps = run(DiscordDestination("https://discord.com/api/webhooks/1/x"), discord, OK)
    assert (True, [0.25]) == (result.ok, sleeps)
    slack = Response(429, {"retry-after": "3"}, b"rate_limited")
    result, sleeps = run(SlackDestination("https://hooks.slack.com/services/T/B/X"), slack, OK)
    assert (True, [3.0]) == (result.ok, sleeps)


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (retry_after_header({"retry-after": when}) or 0) <= 30
    assert None is retry_after_header({"retry-after": "soon"})
    assert None is retry_after_header({})


def test_a_wait_longer_than_the_cap_loses_the_message() -> None:
    result, sleeps = run(TelegramDestination(TOKEN, 1), telegram_429(MAX_RETRY_AFTER + 1))
    assert (False, 429, []) == (result.ok, result.status, sleeps)
    assert "asked to wait" in result.reason


def test_network_errors_and_5xx_back_off_then_give_up() -> None:
    slack = SlackDestination("https://hooks.slack.com/services/T/B/X")
    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    timeout = urllib.error.URLError(TimeoutError("timed out"))
    result, sleeps = run(slack, refused, timeout, Response(503, {}, b""), Response(502, {}, b""))
    assert (False, 4, 502) == (result.ok, result.attempts, result.status)
    assert 3 == len(sleeps)
    assert all(c / 2 <= s <= c for s, c in zip(sleeps, [0.5, 1.0, 2.0], strict=True))
    result, _ = run(slack, refused, retries=0)
    assert "connection refused" == result.reason
    result, _ = run(slack, timeout, retries=0)
    assert "no answer within 1.0 s" == result.reason


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_other_4xx_fail_at_once(status: int) -> None:
    result, sleeps = run(
        SlackDestination("https://hooks.slack.com/services/T/B/X"),
        Response(status, {}, b"no_service"),
    )
    assert (False, True, 1, []) == (result.ok, result.permanent, result.attempts, sleeps)


def test_telegram_ok_false_is_not_a_success_and_errors_are_explained() -> None:
    telegram = TelegramDestination(TOKEN, 1)
    unauthorized = Response(
        401, {}, b'{"ok": false, "error_code": 401, "description": "Unauthorized"}'
    )
    result, _ = run(telegram, unauthorized)
    assert "HTTP 401: Unauthorized (the bot token is wrong or was revoked)" == result.reason
    migrated = Response(
        400, {}, b'{"ok": false, "description": "Bad Request: group chat was upgraded to a '
        b'supergroup chat", "parameters": {"migrate_to_chat_id": -1001234}}'
    )  # fmt: skip
    result, _ = run(telegram, migrated)
    assert result.reason.endswith("(the group is now a supergroup: use chat id -1001234)")


def test_the_shutdown_deadline_bounds_the_waiting() -> None:
    sleeps: list[float] = []
    result = deliver(
        SlackDestination("https://hooks.slack.com/services/T/B/X"),
        OUTGOING,
        timeout=1.0,
        retries=3,
        deadline=lambda: time.monotonic() + 0.1,
        sleep=sleeps.append,
        send=scripted(Response(429, {"retry-after": "5"}, b"")),
    )
    assert (False, []) == (result.ok, sleeps)
    assert result.reason.endswith("no time left to retry")


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (12, 30.0)):
        assert all(ceiling / 2 <= backoff(attempt) <= ceiling for _ in range(50))
