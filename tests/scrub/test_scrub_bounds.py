"""The pieces behind issue 13's scrubbing fixes: ranked secret sets, linear matching, a
time budget with reduced events, JSON prefixes, and URL userinfo."""

from __future__ import annotations

import json
import time

import pytest

from asgi_observe.scrub.scrubber import FILTERED, SECRETS_HINT_KEY, Scrubber
from asgi_observe.scrub.secrets import AUTH, MAX_SECRETS, NAMED, OTHER, SecretSet
from asgi_observe.scrub.urls import redact_userinfo, userinfo_values
from asgi_observe.scrub.values import TextRedactor, json_prefix_secrets
from asgi_observe.scrub.walk import REDUCED_NOTE

# --- ranking -------------------------------------------------------------------------


def test_the_cap_keeps_auth_then_named_then_other_whatever_the_lengths() -> None:
    secrets = SecretSet()
    for index in range(MAX_SECRETS * 2):
        secrets.add(f"{index:05d}-cookie-{'x' * 60}", OTHER)
    secrets.add("named-value-1", NAMED)
    secrets.add("short-auth", AUTH)
    ranked = secrets.ranked()
    assert MAX_SECRETS == len(ranked)
    assert ["short-auth", "named-value-1"] == ranked[:2]


def test_a_value_seen_again_at_a_better_rank_moves_up() -> None:
    secrets = SecretSet()
    secrets.add("cookie-then-auth", OTHER)
    secrets.add("some-other-cookie", OTHER)
    secrets.add("cookie-then-auth", AUTH)
    assert "cookie-then-auth" == secrets.ranked()[0]


def test_header_bytes_give_latin1_utf8_and_bytes_repr_forms() -> None:
    secrets = SecretSet()
    raw = "geheim-ünd-sicher".encode()
    secrets.add_bytes(raw, AUTH)
    assert {"geheim-ünd-sicher", raw.decode("latin-1"), repr(raw)[2:-1]} <= set(secrets)


def test_long_values_are_kept() -> None:
    token = "t" * 10_000
    assert token in SecretSet([token])


# --- matching ------------------------------------------------------------------------


def test_overlapping_and_nested_secrets_become_one_replacement() -> None:
    redactor = TextRedactor(["abcdef-123", "def-123456", "abcdef"], lambda name: False, FILTERED)
    assert f"x {FILTERED} y {FILTERED}" == redactor.values("x abcdef-123456 y abcdef")


def test_prefix_sharing_secrets_over_a_large_text_take_linear_time() -> None:
    prefix = "a" * 200
    secrets = [f"{prefix}{index:04d}" for index in range(MAX_SECRETS)]
    redactor = TextRedactor(secrets, lambda name: False, FILTERED)
    timings = []
    for size in (50_000, 100_000):
        text = (prefix + "b") * (size // 201)
        start = time.perf_counter()
        redactor.values(text)
        timings.append(time.perf_counter() - start)
    # Linear: twice the text costs about twice the time (quadratic would be four times).
    assert timings[1] < 3.5 * timings[0] + 0.05


def test_an_event_over_its_time_budget_is_sent_reduced_and_scrubbed() -> None:
    token = "-".join(["reduced", "bearer", "42"])
    frames = [
        {"function": "handler", "module": "app", "lineno": 3, "vars": {"body": "x" * 200_000}}
        for _ in range(20)
    ]
    event = {
        "event_id": "e1",
        "level": "error",
        "tags": {"route": "/login"},
        "request": {
            "url": "http://h/login?token=q",
            "headers": {"Authorization": f"Bearer {token}"},
        },
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": f"refused {token}",
                    "stacktrace": {"frames": frames},
                }
            ]
        },
        "breadcrumbs": {"values": [{"message": "x"}]},
        "contexts": {"trace": {"trace_id": "t" * 32}, "runtime": {"name": "CPython"}},
    }
    scrubber = Scrubber(time_budget=1e-6)
    start = time.perf_counter()
    reduced = scrubber.scrub_event(event, {SECRETS_HINT_KEY: [token]})
    assert time.perf_counter() - start < 5
    assert REDUCED_NOTE == reduced["extra"]["asgi_observe"]
    text = json.dumps(reduced)
    assert token not in text
    assert "breadcrumbs" not in reduced
    assert {"trace": {"trace_id": "t" * 32}} == reduced["contexts"]
    assert {"method": None, "url": "http://h/login"} == reduced["request"]
    (value,) = reduced["exception"]["values"]
    assert "vars" not in value["stacktrace"]["frames"][0]
    assert {"route": "/login"} == reduced["tags"]


def test_without_a_budget_nothing_is_reduced() -> None:
    event = {"message": "x" * 100_000, "extra": {"password": "never-shown-1"}}
    scrubbed = Scrubber(time_budget=None).scrub_event(event)
    assert "asgi_observe" not in scrubbed["extra"]


@pytest.mark.parametrize("budget", [0, -1, float("nan"), float("inf"), "1"])
def test_the_budget_is_validated(budget: object) -> None:
    with pytest.raises(ValueError):
        Scrubber(time_budget=budget)  # type: ignore[arg-type]


# --- JSON prefixes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"password": "first-secret", "pad": "xxxxx', {"first-secret"}),
        ('{"user": {"token": ["list-secret-1", {"x": "inner-secret"}]}, "more": [1, 2', {
            "list-secret-1", "inner-secret"}),
        ('[{"api_key": 12345678}, {"note": "not-a-secret"', {"12345678"}),
        ('{"token": "cut-in-the-mid', {"cut-in-the-mid"}),  # a cut value's prefix
        ('{"a": "b", "password": "esc\\"aped-value"}', {'esc"aped-value'}),
    ],
)  # fmt: skip
def test_a_json_prefix_yields_its_sensitive_values(text: str, expected: set[str]) -> None:
    found = SecretSet()
    json_prefix_secrets(text, Scrubber().is_sensitive, found)
    assert expected <= set(found)
    assert "not-a-secret" not in found


def test_a_body_over_the_kept_size_yields_its_prefix_fields() -> None:
    body = json.dumps({"password": "prefix-password", "pad": "x" * 100_000}).encode()
    assert "prefix-password" in Scrubber().request_secrets(body=body)


def test_query_values_are_split_on_ampersands_only() -> None:
    secrets = Scrubber().request_secrets(query_string=b"token=ab;cdefgh&page=2")
    assert "ab;cdefgh" in secrets


# --- URL userinfo --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres://app:pw@db:5432/x", "postgres://[Filtered]@db:5432/x"),
        ("see redis://:pw@cache/0 and http://u@h/", "see redis://[Filtered]@cache/0 and http://[Filtered]@h/"),
        ("mysql://u:p@ss@db/x", "mysql://[Filtered]@db/x"),  # an unencoded @ in the password
        ("http://host/path?next=a@b", "http://host/path?next=a@b"),  # @ after the host
        ("host:8000http://u:p@h/", "host:8000http://[Filtered]@h/"),
        ("no url here", "no url here"),
        ("://u:p@h/", "://u:p@h/"),  # no scheme
        ("x://[Filtered]@h", "x://[Filtered]@h"),  # already redacted
    ],
)  # fmt: skip
def test_redact_userinfo(text: str, expected: str) -> None:
    assert expected == redact_userinfo(text)


def test_userinfo_values_are_the_userinfo_and_its_password() -> None:
    assert ["app:pw-1", "pw-1"] == userinfo_values("postgres://app:pw-1@db/x")


def test_health_messages_use_the_same_helper() -> None:
    from asgi_observe.setup.health import _describe

    error = ConnectionError("cannot reach mysql://u:p@ss@db/x")
    assert "ConnectionError: cannot reach mysql://***@db/x" == _describe(error)
