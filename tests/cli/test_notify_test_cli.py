"""asgi-observe notify-test: launched as a process against the chat stand-in on 127.0.0.1."""

from __future__ import annotations

import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from chat_receiver import TOKEN, ChatReceiver, chat_receiver, closed_port_url
from e2e.e2e_harness import BIN_DIR, LOOPBACK, clean_env, free_port, http_ready, running

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver() -> Iterator[ChatReceiver]:
    with chat_receiver() as found:
        yield found


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN_DIR / "asgi-observe"), *args],
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_one_test_message_per_destination_and_a_verdict_for_each(receiver: ChatReceiver) -> None:
    receiver.script.append((404, {"Content-Type": "text/plain"}, "no_service"))  # Slack, first
    env = {
        "ASGI_OBSERVE_SLACK_WEBHOOK_URL": f"{receiver.url}/slack/T1/B1/SLACKSECRETPATH",
        "ASGI_OBSERVE_TELEGRAM_BOT_TOKEN": TOKEN,
        "ASGI_OBSERVE_TELEGRAM_CHAT_IDS": "-100200300, -100200300:5",
        "ASGI_OBSERVE_TELEGRAM_API_URL": receiver.url,
        "ASGI_OBSERVE_DISCORD_WEBHOOK_URL": f"{closed_port_url()}/api/webhooks/1/DISCORDSECRET",
        "ASGI_OBSERVE_NOTIFY_TIMEOUT": "2",
        "OTEL_SERVICE_NAME": "billing",
    }
    # The scripted 404 goes to whoever posts first: Slack, alone.
    slack_only = {k: v for k, v in env.items() if "TELEGRAM" not in k and "DISCORD" not in k}
    result = run("notify-test", env=slack_only)
    assert 1 == result.returncode
    assert "slack webhook (127.0.0.1)  FAILED: HTTP 404: no_service" in result.stdout

    result = run("notify-test", env=env)
    lines = result.stdout.splitlines()
    assert 1 == result.returncode, result.stderr
    assert [
        "telegram chat -100200300          ok",
        "telegram chat -100200300 topic 5  ok",
        "slack webhook (127.0.0.1)         ok",
        "discord webhook (127.0.0.1)       FAILED: connection refused",
        "1 of 4 destinations failed",
    ] == lines
    texts = receiver.texts()
    assert 4 == len(texts)  # the failed Slack attempt, then three test messages
    # The destinations send in parallel: the arrival order is not fixed.
    telegram = [text for text in texts[1:] if "</b>" in text]
    assert 2 == len(telegram)
    assert all("asgi-observe test message</b> from billing" in text for text in telegram)
    output = result.stdout + result.stderr
    for secret in (TOKEN, "SLACKSECRETPATH", "DISCORDSECRET"):
        assert secret not in output


def test_no_destination_and_bad_variables_fail_with_exit_status_2() -> None:
    nothing = run("notify-test", env={})
    assert 2 == nothing.returncode
    assert "no notification destination is configured" in nothing.stderr
    bad = run(
        "notify-test",
        env={
            "ASGI_OBSERVE_TELEGRAM_BOT_TOKEN": "not-a-token",
            "ASGI_OBSERVE_TELEGRAM_CHAT_IDS": "1",
        },
    )
    assert 2 == bad.returncode
    assert "ASGI_OBSERVE_TELEGRAM_BOT_TOKEN" in bad.stderr
    assert "not-a-token" not in bad.stderr and "Traceback" not in bad.stderr


def test_run_refuses_a_bad_notification_variable_at_startup() -> None:
    result = run(
        "run", "sample_app:app", "--port", str(free_port()),
        env={"ASGI_OBSERVE_NOTIFY_RATE_LIMIT": "lots"},
    )  # fmt: skip
    assert 2 == result.returncode
    assert "ASGI_OBSERVE_NOTIFY_RATE_LIMIT='lots'" in result.stderr


FAILING_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/boom":
        raise ZeroDivisionError("division by zero in the ledger")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})
"""


def test_run_notifies_and_sends_the_repeat_count_at_shutdown(
    tmp_path: Path, receiver: ChatReceiver
) -> None:
    """A real uvicorn under `asgi-observe run`: five failures give one message at once, and
    SIGTERM's lifespan shutdown flushes the summary of the other four."""
    (tmp_path / "failing_app.py").write_text(textwrap.dedent(FAILING_APP))
    port = free_port()
    env = {
        "ASGI_OBSERVE_TELEGRAM_BOT_TOKEN": TOKEN,
        "ASGI_OBSERVE_TELEGRAM_CHAT_IDS": "-100999",
        "ASGI_OBSERVE_TELEGRAM_API_URL": receiver.url,
        "OTEL_SERVICE_NAME": "ledger",
    }
    argv = [
        str(BIN_DIR / "asgi-observe"), "run", "failing_app:app", "--app-dir", str(tmp_path),
        "--port", str(port),
    ]  # fmt: skip
    with running(
        argv,
        log_path=tmp_path / "server.log",
        env=clean_env(env),
        ready=http_ready("/hello", status=200),
        base_url=f"http://{LOOPBACK}:{port}",
    ) as server:
        statuses = [httpx.get(f"{server.base_url}/boom").status_code for _ in range(5)]
        receiver.wait_for(1)
        server.popen.send_signal(signal.SIGTERM)
        server.popen.wait(timeout=20)
        output = server.output()

    assert [500] * 5 == statuses
    first, summary = receiver.texts()
    assert first.startswith("🔴 <b>ZeroDivisionError</b> in ledger")
    assert "division by zero in the ledger" in first
    assert "repeated 4 more times" in summary
    assert TOKEN not in output
