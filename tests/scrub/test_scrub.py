"""scrub: sensitive names, query strings, and secrets anywhere in Sentry-shaped events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sentry_sdk.serializer import serialize

from asgi_observe.scrub.scrubber import (
    FILTERED,
    SECRETS_HINT_KEY,
    Scrubber,
    is_sensitive_name,
    redact_query_string,
    scrub_event,
)

TOKEN = "tok-5f2b9c1e7d"
PASSWORD = "hunter2-secret"
COOKIE = "c00kie-value-77"


# --- names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        # exact names
        "authorization",
        "Authorization",
        "PROXY-AUTHORIZATION",
        "proxy_authorization",
        "cookie",
        "Set-Cookie",
        "set_cookie",
        "x-api-key",
        "X_API_KEY",
        # names containing a sensitive part
        "access_token",
        "X-Auth-Token",
        "client_secret",
        "password",
        "db_passwd",
        "sessionid",
        "aws_credentials",
        "x-amz-signature",
        "csrfmiddlewaretoken",
        "X-XSRF-TOKEN",
        "my-api-key",
        "my_api_key",
        "x-authentication",
        " Authorization ",
    ],
)
def test_sensitive_names_match_case_and_separator_insensitively(name: str) -> None:
    assert True is is_sensitive_name(name)
    assert True is Scrubber().is_sensitive(name)


@pytest.mark.parametrize(
    "name", ["host", "accept", "content-type", "user-agent", "x-request-id", "page", ""]
)
def test_ordinary_names_are_not_sensitive(name: str) -> None:
    assert False is is_sensitive_name(name)
    assert False is Scrubber().is_sensitive(name)


def test_long_names_are_judged_without_the_cache() -> None:
    assert True is is_sensitive_name("x" * 100 + "token")
    assert True is Scrubber().is_sensitive("x" * 100 + "token")
    assert False is Scrubber().is_sensitive("x" * 100)


def test_deny_extends_the_default_parts() -> None:
    scrubber = Scrubber(deny=["X-Internal", "ssn"])
    assert (True, True, True) == (
        scrubber.is_sensitive("x_internal_trace"),
        scrubber.is_sensitive("customer-SSN"),
        scrubber.is_sensitive("authorization"),
    )


def test_allow_keeps_exact_names_only() -> None:
    scrubber = Scrubber(allow=["X_Auth_Request_Id"])
    assert (False, True) == (
        scrubber.is_sensitive("x-auth-request-id"),
        scrubber.is_sensitive("x-auth-request-token"),
    )


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"deny": "token"}, TypeError),
        ({"allow": b"token"}, TypeError),
        ({"deny": [""]}, ValueError),
        ({"allow": [None]}, ValueError),
        ({"replacement": 1}, TypeError),
    ],
)
def test_options_are_validated(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        Scrubber(**options)


# --- query strings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", ""),
        (b"page=2", "page=2"),
        (b"token=abc&page=2", "token=REDACTED&page=2"),
        ("access_token=abc&x=1&password=p", "access_token=REDACTED&x=1&password=REDACTED"),
        (b"api%5Fkey=abc", "api%5Fkey=REDACTED"),
        (b"token=&token", "token=&token"),
        (b"a=1&&token=x=y", "a=1&&token=REDACTED"),
    ],
)
def test_redact_query_string(query: bytes | str, expected: str) -> None:
    assert expected == redact_query_string(query)


def test_scrubber_redacts_queries_with_its_own_names() -> None:
    scrubber = Scrubber(deny=["ssn"], allow=["token"])
    assert "token=1&ssn=[Filtered]" == scrubber.redact_query(b"token=1&ssn=123")


# --- the sections of an event -------------------------------------------------------------


def test_request_section_headers_cookies_query_and_data() -> None:
    event = {
        "request": {
            "url": f"http://h/p?token={TOKEN}",
            "method": "POST",
            "query_string": f"token={TOKEN}&page=2",
            "headers": {
                "Authorization": f"Bearer {TOKEN}",
                "X-Api-Key": "k-123456789",
                "Accept": "*/*",
            },
            "cookies": {"sessionid": COOKIE, "theme": "dark-mode"},
            "data": {"username": "bob", "password": PASSWORD, "nested": {"api_key": "x" * 8}},
        }
    }
    assert {
        "url": "http://h/p?token=[Filtered]",
        "method": "POST",
        "query_string": "token=[Filtered]&page=2",
        "headers": {"Authorization": FILTERED, "X-Api-Key": FILTERED, "Accept": "*/*"},
        "cookies": {"sessionid": FILTERED, "theme": FILTERED},
        "data": {"username": "bob", "password": FILTERED, "nested": {"api_key": FILTERED}},
    } == scrub_event(event)["request"]


def test_cookie_header_string_and_header_pairs() -> None:
    event = {
        "request": {
            "cookies": f"sessionid={COOKIE}; theme=dark",
            "headers": [["Cookie", f"sessionid={COOKIE}"], ["Host", "example.org"]],
        }
    }
    assert {
        "cookies": FILTERED,
        "headers": [["Cookie", FILTERED], ["Host", "example.org"]],
    } == scrub_event(event)["request"]


def test_extra_contexts_tags_and_breadcrumbs() -> None:
    event = {
        "extra": {"db_password": PASSWORD, "rows": 3},
        "contexts": {"auth": {"user": "bob", "token": TOKEN}, "trace": {"trace_id": "ab" * 16}},
        "tags": {"session_id": "s-1234567", "route": "/x"},
        "breadcrumbs": {
            "values": [
                {"category": "httplib", "data": {"url": f"http://up/?api_key={TOKEN}"}},
                {"message": f"Authorization: Bearer {TOKEN}", "data": {"secret": 1}},
            ]
        },
    }
    assert {
        "extra": {"db_password": FILTERED, "rows": 3},
        "contexts": {
            "auth": {"user": FILTERED, "token": FILTERED},
            "trace": {"trace_id": "ab" * 16},
        },
        "tags": {"session_id": FILTERED, "route": "/x"},
        "breadcrumbs": {
            "values": [
                {"category": "httplib", "data": {"url": "http://up/?api_key=[Filtered]"}},
                {"message": "Authorization: [Filtered]", "data": {"secret": FILTERED}},
            ]
        },
    } == scrub_event(event)


def test_tags_as_pairs() -> None:
    assert {"tags": [["csrf_token", FILTERED], ["env", "prod"]]} == scrub_event(
        {"tags": [("csrf_token", "x" * 10), ("env", "prod")]}
    )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (f"login failed password={PASSWORD}", "login failed password=[Filtered]"),
        (f"bad kwargs Client(api_key='{TOKEN}')", "bad kwargs Client(api_key='[Filtered]')"),
        (f"payload {{'token': '{TOKEN}'}}", "payload {'token': '[Filtered]'}"),
        (f'json {{"password": "{PASSWORD}", "n": 1}}', 'json {"password": "[Filtered]", "n": 1}'),
        ('json {"pin_secret": 123456}', 'json {"pin_secret": [Filtered]}'),
        (
            f"header (b'authorization', b'Bearer {TOKEN}')",
            "header (b'authorization', b'[Filtered]')",
        ),
        (f"Headers([('Cookie', 'sid={COOKIE}')])", "Headers([('Cookie', '[Filtered]')])"),
        (f"X-Api-Key: {TOKEN}\nHost: h", "X-Api-Key: [Filtered]\nHost: h"),
        ("nothing to see", "nothing to see"),
        ("Missing auth: please log in", "Missing auth: please log in"),
    ],
)
def test_exception_values_are_scrubbed_by_shape(message: str, expected: str) -> None:
    event = {"exception": {"values": [{"type": "ValueError", "value": message}]}}
    assert expected == scrub_event(event)["exception"]["values"][0]["value"]


def test_code_context_keeps_sensitive_names_but_loses_secret_values() -> None:
    frame = {
        "context_line": '    password = form["password"]',
        "pre_context": [f"    token = '{TOKEN}'", None],
        "function": "login",
    }
    event = {
        "request": {"headers": {"authorization": f"Bearer {TOKEN}"}},
        "exception": {"values": [{"stacktrace": {"frames": [frame]}}]},
    }
    scrubbed = scrub_event(event)["exception"]["values"][0]["stacktrace"]["frames"][0]
    assert {
        "context_line": '    password = form["password"]',
        "pre_context": ["    token = '[Filtered]'", None],
        "function": "login",
    } == scrubbed


# --- frame variables as sentry-sdk serialises them ----------------------------------------


def frame_vars(**local_variables: Any) -> Any:
    """What sentry-sdk puts in a frame's ``vars`` for these locals."""
    return serialize(local_variables, is_vars=True)


def asgi_scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/login",
        "query_string": f"next=/home&token={TOKEN}".encode(),
        "headers": [
            (b"host", b"example.org"),
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"cookie", f"sessionid={COOKIE}".encode()),
            (b"x-api-key", b"key-0123456789"),
            (b"x-custom-auth", b"custom-00001"),
        ],
    }


def leaked(data: Any, *secrets: str) -> list[str]:
    text = json.dumps(data)
    return [secret for secret in secrets if secret in text]


SECRETS = (TOKEN, COOKIE, PASSWORD, "key-0123456789", "custom-00001")


def test_raw_asgi_structures_in_frame_variables() -> None:
    """Header pairs, query_string bytes and http.request bodies, as sentry-sdk writes them."""
    scope = asgi_scope()
    message = {
        "type": "http.request",
        "body": json.dumps({"user": "bob", "password": PASSWORD}).encode(),
        "more_body": False,
    }
    form = {"type": "http.request", "body": f"user=bob&password={PASSWORD}".encode()}
    variables = frame_vars(
        scope=scope,
        headers=scope["headers"],
        header_tuple=tuple(scope["headers"]),
        query_string=scope["query_string"],
        message=message,
        form=form,
        deep={"a": {"b": {"c": {"d": {"headers": scope["headers"]}}}}},
    )
    event = {"exception": {"values": [{"stacktrace": {"frames": [{"vars": variables}]}}]}}
    # No request section and no hint: everything here is caught by name and shape.
    scrubbed = scrub_event(event)
    assert [] == leaked(scrubbed, *SECRETS)
    scrubbed_vars = scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]
    assert ["b'host'", "b'example.org'"] == scrubbed_vars["headers"][0]
    assert "b'next=/home&token=[Filtered]'" == scrubbed_vars["query_string"]


def test_values_seen_in_the_request_are_caught_anywhere() -> None:
    """A token copied into an innocently named local or a message is redacted by value."""
    variables = frame_vars(copied=TOKEN, parts=["x", COOKIE], note=f"got {PASSWORD}!")
    event = {
        "request": {
            "headers": {"Authorization": f"Bearer {TOKEN}", "Cookie": f"a={COOKIE}"},
            "data": {"password": PASSWORD},
        },
        "exception": {
            "values": [
                {"value": f"rejected {TOKEN}", "stacktrace": {"frames": [{"vars": variables}]}}
            ]
        },
        "transaction": f"/reset/{TOKEN}",
    }
    scrubbed = scrub_event(event)
    assert [] == leaked(scrubbed, TOKEN, COOKIE, PASSWORD)
    assert "rejected [Filtered]" == scrubbed["exception"]["values"][0]["value"]
    assert "/reset/[Filtered]" == scrubbed["transaction"]


def test_secrets_passed_in_the_hint_are_caught_anywhere() -> None:
    event = {"extra": {"note": f"x {TOKEN} y"}, "message": f"{TOKEN}"}
    hint = {SECRETS_HINT_KEY: frozenset({TOKEN})}
    assert {"extra": {"note": "x [Filtered] y"}, "message": FILTERED} == scrub_event(event, hint)


def test_secret_variants_basic_auth_and_encodings() -> None:
    import base64

    basic = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
    scrubber = Scrubber()
    secrets = scrubber.request_secrets(
        headers=[(b"authorization", f"Basic {basic}".encode())],
        query_string=b"token=a%2Fb%2Fc%2Fd",
    )
    event = {"extra": {"p": f"pw {PASSWORD}", "q": "a/b/c/d", "encoded": "a%2Fb%2Fc%2Fd"}}
    assert {"extra": {"p": "pw [Filtered]", "q": FILTERED, "encoded": FILTERED}} == (
        scrubber.scrub_event(event, {SECRETS_HINT_KEY: secrets})
    )


def test_request_secrets_from_json_and_form_bodies() -> None:
    scrubber = Scrubber()
    assert {PASSWORD, "9876543"} <= scrubber.request_secrets(
        body=json.dumps({"user": {"password": PASSWORD}, "pin_secret": 9876543}).encode()
    )
    assert {PASSWORD} <= scrubber.request_secrets(body=f"user=bob&password={PASSWORD}".encode())
    assert frozenset() == scrubber.request_secrets(body=b"user=bob&page=2")


def test_request_secrets_keep_what_odd_input_allows() -> None:
    def broken_headers() -> Any:
        yield (b"authorization", b"Bearer abcdefgh")
        raise RuntimeError("a header iterator that fails")

    secrets = Scrubber().request_secrets(
        headers=broken_headers(), query_string=b"token=query-token-1", body=b"\xff{"
    )
    assert {"query-token-1"} <= secrets


def test_short_values_are_redacted_by_name_only() -> None:
    """Six characters or more: replacing "dark" everywhere would blank unrelated text."""
    event = {"request": {"cookies": {"theme": "dark"}}, "extra": {"mode": "dark"}}
    assert {"request": {"cookies": {"theme": FILTERED}}, "extra": {"mode": "dark"}} == (
        scrub_event(event)
    )


def test_custom_replacement_and_deny_allow_apply_everywhere() -> None:
    scrubber = Scrubber(deny=["ssn"], allow=["session-id"], replacement="***")
    event = {"extra": {"ssn": "078-05-1120", "session_id": "kept", "token": "t"}}
    assert {"extra": {"ssn": "***", "session_id": "kept", "token": "***"}} == (
        scrubber.scrub_event(event)
    )


def test_sdk_metadata_is_left_alone() -> None:
    event = {"modules": {"authlib": "1.0"}, "sdk": {"name": "sentry.python"}}
    assert event == scrub_event(event)


def test_the_input_event_is_not_changed() -> None:
    event = {"extra": {"token": TOKEN}}
    scrub_event(event)
    assert {"extra": {"token": TOKEN}} == event


# --- odd shapes never raise -----------------------------------------------------------------


def test_cycles_bytes_sets_and_odd_keys() -> None:
    cyclic: dict[str, Any] = {"name": "x"}
    cyclic["self"] = cyclic
    looped: list[Any] = [1]
    looped.append(looped)

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    event = {
        "extra": {
            "cyclic": cyclic,
            "looped": looped,
            "raw": b"token=abcdefgh",
            "set": {1},
            b"password": "x",
            42: "y",
            ("a", "b"): "z",
            "obj": Unprintable(),
        }
    }
    assert {
        "cyclic": {"name": "x", "self": "<cyclic>"},
        "looped": [1, "<cyclic>"],
        "raw": "token=[Filtered]",
        "set": [1],
        "password": FILTERED,
        42: "y",
        "('a', 'b')": "z",
        "obj": FILTERED,
    } == scrub_event(event)["extra"]


def test_deep_nesting_is_cut_off() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    scrubbed = scrub_event({"extra": {"deep": deep}})
    assert FILTERED in json.dumps(scrubbed)


def test_not_an_event() -> None:
    assert ["x"] == scrub_event(["x"])
    assert "s" == scrub_event("s")
    assert None is scrub_event(None)


def test_a_failing_mapping_gives_a_safe_event_instead_of_an_error() -> None:
    class Broken(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            raise RuntimeError("broken")

    scrubbed = scrub_event(Broken(event_id="e1", extra={"token": TOKEN}))
    assert "e1" == scrubbed["event_id"]
    assert [] == leaked(scrubbed, TOKEN)


def test_huge_strings_are_scrubbed() -> None:
    huge = "a" * 2_000_000 + f" token={TOKEN} " + "'x': '" * 1000
    scrubbed = scrub_event({"request": {"headers": {"x-token": TOKEN}}, "extra": {"h": huge}})
    assert [] == leaked(scrubbed, TOKEN)


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.binary(max_size=40),
)
names = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["authorization", "password", "token", "cookies", "request", "headers"]),
)
event_like = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(names, children, max_size=5),
    ),
    max_leaves=40,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(event=st.dictionaries(names, event_like, max_size=6), hint=st.one_of(st.none(), event_like))
@example(
    event={"request": {"headers": [b"x"], "cookies": {b"a": 1}, "data": b"{["}, "x": []},
    hint=None,
)
@example(event={"request": {"query_string": b"\xff=\xff", "data": "[" * 100}}, hint=None)
def test_never_raises_and_returns_json_data(event: dict[str, Any], hint: Any) -> None:
    scrubbed = scrub_event(event, hint)
    json.dumps(scrubbed, default=str)


secret_values = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=8, max_size=30
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    secret=secret_values,
    name=st.sampled_from(["Authorization", "x-api-key", "SESSION_ID", "password", "csrf"]),
    shape=event_like,
    where=st.sampled_from(["extra", "contexts", "tags", "breadcrumbs", "user"]),
)
def test_a_secret_under_a_sensitive_name_never_survives(
    secret: str, name: str, shape: Any, where: str
) -> None:
    # The shape may spell the secret by chance (100000000.0 holds "00000000").
    assume(secret not in json.dumps(shape, ensure_ascii=False, default=str))
    event = {where: {"wrap": [shape, {name: secret}]}}
    scrubbed = scrub_event(event)
    # The marker that replaces it may spell it too ("[Filtere", 'ltered]"}'): read the
    # output with each marker as a character no secret holds.
    text = json.dumps(scrubbed, ensure_ascii=False).replace(FILTERED, "\x00")
    assert secret not in text


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(secret=secret_values, prefix=st.text(max_size=20), suffix=st.text(max_size=20))
def test_a_secret_seen_in_the_request_never_survives_in_text(
    secret: str, prefix: str, suffix: str
) -> None:
    event = {
        "request": {"headers": {"X-Session-Token": secret}},
        "exception": {"values": [{"value": prefix + secret + suffix}]},
        "extra": {"var": repr(prefix + secret)},
    }
    scrubbed = scrub_event(event)
    assert secret not in json.dumps(scrubbed, ensure_ascii=False)
