"""Issue 13: Sentry data of one request never reaches another's events, and every planted
secret stays out of what the real sentry-sdk transport posts to the local receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from asgi_driver import Recorder, call, http_scope
from prometheus_client import CollectorRegistry
from sentry_receiver import Receiver, sentry_client, wait_for

from asgi_observe.errors.sentry import SentryMiddleware
from asgi_observe.observe import observe
from asgi_observe.scrub.values import MAX_BODY_BYTES

# observe() without touching process-wide state other tests read: no configure(), no
# global propagator, no record factory.
QUIET: dict[str, Any] = {"configure": False, "install_propagator": False, "log_correlation": False}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def sentry(receiver: Receiver) -> Iterator[Any]:
    with sentry_client(receiver.dsn, include_local_variables=True) as client:
        yield client


def flushed(receiver: Receiver, count: int = 1) -> list[dict[str, Any]]:
    sentry_sdk.flush(timeout=5)
    wait_for(lambda: len(receiver.events) >= count, timeout=3)
    return receiver.events


def planted(*parts: str) -> str:
    """A secret spelled nowhere in this file: source lines are sent, scrubbed by value."""
    return "-".join(parts)


def leaked(receiver: Receiver, *secrets: str) -> list[str]:
    """The planted secrets found anywhere in the posted bytes."""
    sentry_sdk.flush(timeout=5)
    raw = receiver.raw.decode("utf-8", "replace")
    return [secret for secret in secrets if secret in raw]


# --- scopes --------------------------------------------------------------------------


def scope_app() -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        name = scope["path"].strip("/")
        if name.startswith("set"):
            sentry_sdk.get_current_scope().set_user({"id": name})
            sentry_sdk.get_current_scope().set_tag("leaky", name)
            await asyncio.sleep(0.01)
        else:
            await asyncio.sleep(0)
        raise RuntimeError(name)

    return app


def by_message(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {event["exception"]["values"][0]["value"]: event for event in events}


@pytest.mark.parametrize("wrap", ["middleware", "observe"])
async def test_current_scope_data_does_not_reach_the_next_request(
    sentry: Any, receiver: Receiver, wrap: str
) -> None:
    app = scope_app()
    layered = (
        SentryMiddleware(app)
        if wrap == "middleware"
        else observe(app, **QUIET, metrics=False, sentry=True)
    )
    for path in ("/set-a", "/plain-b"):
        with pytest.raises(RuntimeError):
            await call(layered, http_scope(path))
    events = by_message(flushed(receiver, 2))
    assert {"id": "set-a"} == events["set-a"]["user"]
    assert "user" not in events["plain-b"]
    assert "leaky" not in events["plain-b"].get("tags", {})
    assert None is sentry_sdk.get_current_scope()._user


async def test_current_scope_data_does_not_reach_concurrent_requests(
    sentry: Any, receiver: Receiver
) -> None:
    layered = SentryMiddleware(scope_app())
    paths = [f"/set-{index}" if index % 2 else f"/plain-{index}" for index in range(10)]
    results = await asyncio.gather(
        *(call(layered, http_scope(path)) for path in paths), return_exceptions=True
    )
    assert all(isinstance(result, RuntimeError) for result in results)
    events = by_message(flushed(receiver, len(paths)))
    for path in paths:
        name = path.strip("/")
        event = events[name]
        if name.startswith("set"):
            assert ({"id": name}, name) == (event["user"], event["tags"]["leaky"])
        else:
            assert ("user" in event, "leaky" in event.get("tags", {})) == (False, False)


# --- scrubbing holes -----------------------------------------------------------------


async def test_a_local_sentry_blanks_first_is_still_learned_for_its_copies(
    sentry: Any, receiver: Receiver
) -> None:
    secret = planted("hunter2", "typed", "by", "user")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        parsed = json.loads(message["body"])
        password = parsed["typed"]  # learned from this local only, which sentry-sdk blanks
        note = "user typed " + password  # noqa: F841 (a local sentry-sdk serialises)
        copy = {"confirm": password}  # noqa: F841
        raise ValueError(f"rejected {password}")

    body = json.dumps({"typed": secret}).encode()
    recorder = Recorder([{"type": "http.request", "body": body, "more_body": False}])
    with pytest.raises(ValueError):
        await call(SentryMiddleware(app), http_scope("/login", method="POST"), recorder)
    assert [] == leaked(receiver, secret)
    assert 1 == len(receiver.events)


async def test_a_json_body_over_the_kept_size_still_gives_its_secrets(
    sentry: Any, receiver: Receiver
) -> None:
    secret = planted("early", "field", "password", "31")
    document = {"password": secret, "padding": "x" * (MAX_BODY_BYTES + 1000)}
    body = json.dumps(document).encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        value = secret
        raise ValueError(f"could not store {value}")

    recorder = Recorder([{"type": "http.request", "body": body, "more_body": False}])
    with pytest.raises(ValueError):
        await call(SentryMiddleware(app), http_scope("/", method="POST"), recorder)
    assert [] == leaked(receiver, secret)


async def test_a_query_value_holding_a_semicolon_is_one_secret(
    sentry: Any, receiver: Receiver
) -> None:
    secret = planted("SEMICOLON", "SECRET", "77")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError(f"token was ab;{secret} and more")

    query = f"token=ab;{secret}".encode()
    with pytest.raises(ValueError):
        await call(SentryMiddleware(app), http_scope("/", query_string=query))
    assert [] == leaked(receiver, secret)


async def test_many_cookies_never_push_out_a_gateways_secret_header(
    sentry: Any, receiver: Receiver
) -> None:
    gateway = planted("gateway", "injected", "key", "5150")
    # Longer than the gateway's value: a cap that keeps the longest drops the gateway's.
    cookies = "; ".join(f"c{index}={index:05d}-{'v' * 40}" for index in range(530))
    headers = [(b"cookie", cookies.encode()), (b"x-api-key", gateway.encode())]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError(f"upstream said no to {gateway}")

    with pytest.raises(ValueError):
        await call(SentryMiddleware(app), http_scope("/", headers=headers))
    assert [] == leaked(receiver, gateway)


async def test_a_bearer_token_longer_than_4096_characters_is_kept(
    sentry: Any, receiver: Receiver
) -> None:
    token = "L" + "0123456789abcdef" * 400  # 6401 characters

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError(f"token {token} expired")

    headers = [(b"authorization", f"Bearer {token}".encode())]
    with pytest.raises(ValueError):
        await call(SentryMiddleware(app), http_scope("/", headers=headers))
    assert [] == leaked(receiver, token, token[:200])


async def test_a_utf8_header_secret_is_caught_decoded_and_as_bytes(
    sentry: Any, receiver: Receiver
) -> None:
    secret = planted("pässwörd", "geheim", "ü")
    raw = secret.encode("utf-8")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        value = dict(scope["headers"])[b"x-api-key"]
        as_bytes = value  # noqa: F841 (serialised as b'p\xc3\xa4...')
        decoded = value.decode("utf-8")
        raise ValueError(f"refused {decoded}")

    with pytest.raises(ValueError):
        await call(SentryMiddleware(app), http_scope("/", headers=[(b"x-api-key", raw)]))
    assert [] == leaked(receiver, secret, repr(raw)[2:-1], json.dumps(secret)[1:-1])


# Three long enough to be learned, two too short (redacted by the shape around them).
NESTED = (*(planted("nested", kind, "0001") for kind in ("list", "dict", "tuple")), "pw4x", "ab12")


async def test_values_under_sensitive_names_past_sentrys_depth_limit(
    sentry: Any, receiver: Receiver
) -> None:
    async def app_keeping_locals(scope: Any, receive: Any, send: Any) -> None:
        # Read from a global, so that no local holds the values under an innocent name.
        deep = {"a": {"b": {"c": {"d": {"e": {"password": [NESTED[0], NESTED[3]]}}}}}}
        deeper = {"a": {"b": {"c": {"d": {"e": {"f": {"token": {"k": NESTED[1]}}}}}}}}
        also = [[[[[[{"api_key": (NESTED[2], NESTED[4])}]]]]]]
        assert deep and deeper and also
        raise ValueError("boom")

    with pytest.raises(ValueError):
        await call(SentryMiddleware(app_keeping_locals), http_scope("/"))
    assert [] == leaked(receiver, *NESTED)


async def test_url_userinfo_in_the_target_and_in_app_data_is_redacted(
    sentry: Any, receiver: Receiver
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        dsn = f"postgres://admin:{db}@db.internal:5432/app"  # noqa: F841
        raise ConnectionError(f"cannot reach redis://:{cache}@cache:6379/0")

    db, cache, target = (planted(kind, "pass", "4242") for kind in ("db", "redis", "target"))
    scope = http_scope(f"http://proxyuser:{target}@upstream/x")
    with pytest.raises(ConnectionError):
        await call(SentryMiddleware(app), scope)
    assert [] == leaked(receiver, db, cache, target)
    raw = receiver.raw.decode()
    assert "db.internal:5432/app" in raw  # the host and path stay useful


async def test_sentry_logs_sent_during_a_request_are_scrubbed(receiver: Receiver) -> None:
    import sentry_sdk.logger

    token = planted("log", "bearer", "token", "77")
    seen_by_user_hook = []

    def before_send_log(log: Any, hint: Any) -> Any:
        seen_by_user_hook.append(log["body"])
        return log

    async def app(scope: Any, receive: Any, send: Any) -> None:
        header = dict(scope["headers"])[b"authorization"].decode()
        sentry_sdk.logger.info("calling upstream with {auth}", auth=header)
        sentry_sdk.logger.warning("cache at redis://:{pw}@cache:6379", pw="cache-secret-99")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    headers = [(b"authorization", f"Bearer {token}".encode())]
    with sentry_client(receiver.dsn, enable_logs=True, before_send_log=before_send_log):
        await call(SentryMiddleware(app), http_scope("/", headers=headers))
        sentry_sdk.flush(timeout=5)
        wait_for(lambda: len(receiver.items("log")) >= 1, timeout=3)
    logs = [item for batch in receiver.items("log") for item in batch["items"]]
    assert 2 == len(logs)
    assert 2 == len(seen_by_user_hook)  # the user's hook still runs, first
    assert [] == leaked(receiver, token, "cache-secret-99")
    assert "calling upstream with [Filtered]" == logs[0]["body"]


async def test_a_malformed_metrics_accept_costs_no_sentry_event(receiver: Receiver) -> None:
    """Issue 13: through sentry-sdk's logging integration, the ERROR traceback a bad
    `Accept` used to cause became one Sentry event per request."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the metrics endpoint is answered before the app")

    with sentry_client(receiver.dsn):
        layered = observe(
            app, **QUIET, sentry=True, metrics_path="/metrics", registry=CollectorRegistry()
        )
        headers = [(b"accept", b"application/openmetrics-text; version=abc")]
        recorder = await call(layered, http_scope("/metrics", headers=headers))
        sentry_sdk.flush(timeout=5)
    assert 200 == recorder.status
    assert [] == receiver.events
