"""ClientPolicy: who may see the viewer."""

from __future__ import annotations

import pytest
from asgi_driver import http_scope

from asgi_observe.viewer.access import ClientPolicy

HOST = [(b"host", b"127.0.0.1:8000")]


@pytest.mark.parametrize(
    ("client", "headers", "allowed"),
    [
        # loopback peers, v4 and v6, and v4-mapped v6
        (("127.0.0.1", 1), HOST, True),
        (("127.9.8.7", 1), HOST, True),
        (("::1", 1), [(b"host", b"[::1]:8000")], True),
        (("::ffff:127.0.0.1", 1), HOST, True),
        (("127.0.0.1", 1), [(b"host", b"localhost:8000")], True),
        (("127.0.0.1", 1), [(b"host", b"app.localhost")], True),
        (("127.0.0.1", 1), [], True),  # HTTP/1.0 without Host
        # anyone else
        (("10.0.0.5", 1), HOST, False),
        (("203.0.113.7", 1), HOST, False),
        (("::ffff:10.0.0.1", 1), HOST, False),
        (("2001:db8::1", 1), HOST, False),
        (None, HOST, False),  # no client known (e.g. a unix socket without peer)
        (("testclient", 50000), HOST, False),
        (("", 0), HOST, False),
        # a loopback peer that is a proxy for someone else
        (("127.0.0.1", 1), [*HOST, (b"x-forwarded-for", b"203.0.113.7")], False),
        (("127.0.0.1", 1), [*HOST, (b"X-Forwarded-For", b"127.0.0.1")], False),
        (("127.0.0.1", 1), [*HOST, (b"forwarded", b"for=203.0.113.7")], False),
        (("127.0.0.1", 1), [*HOST, (b"x-real-ip", b"203.0.113.7")], False),
        # DNS rebinding: a page of another site resolving to 127.0.0.1
        (("127.0.0.1", 1), [(b"host", b"attacker.example:8000")], False),
        (("127.0.0.1", 1), [(b"host", b"127.0.0.1.attacker.example")], False),
        (("127.0.0.1", 1), [(b"host", b"[::1")], False),
    ],
)
def test_default_policy(client: tuple[str, int] | None, headers: list, allowed: bool) -> None:
    refusal = ClientPolicy().refusal(http_scope(client=client, headers=headers))

    assert allowed == (refusal is None), refusal


@pytest.mark.parametrize(
    ("client", "allowed"),
    [(("10.1.2.3", 1), True), (("10.255.0.1", 1), True), (("192.168.1.2", 1), True),
     (("127.0.0.1", 1), False), (("11.0.0.1", 1), False)],
)  # fmt: skip
def test_explicit_networks_replace_loopback(client: tuple[str, int], allowed: bool) -> None:
    policy = ClientPolicy(["10.0.0.0/8", "192.168.1.2"])
    # Behind a proxy that sets the client (uvicorn's --forwarded-allow-ips), the
    # forwarding headers and the public Host name are expected.
    headers = [(b"host", b"observe.internal"), (b"x-forwarded-for", client[0].encode())]

    assert allowed == (policy.refusal(http_scope(client=client, headers=headers)) is None)


def test_allow_everyone_is_possible_but_explicit() -> None:
    policy = ClientPolicy(["0.0.0.0/0", "::/0"])

    assert policy.refusal(http_scope(client=("198.51.100.1", 1))) is None
