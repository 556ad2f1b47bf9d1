"""With error notifications on, the viewer groups errors by the notifications' fingerprint
(type, innermost in-app frame, route): a chat message's fingerprint names a viewer group."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from chat_receiver import ChatReceiver, chat_receiver
from notify_helpers import clean_globals
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asgi_observe import observe
from asgi_observe.errors.notify import Notifier, NotifyOptions, WebhookDestination
from asgi_observe.viewer import Viewer


@pytest.fixture(autouse=True)
def _globals() -> Iterator[None]:
    with clean_globals():
        yield


@pytest.fixture
def receiver() -> Iterator[ChatReceiver]:
    with chat_receiver() as found:
        yield found


def parse(text: str) -> int:
    raise ValueError("not a number")


def lookup(key: str) -> int:
    raise ValueError("no such key")


async def item(request: Request) -> Response:
    # Two places raise the same type on the same route: two notification fingerprints.
    if request.path_params["item_id"].isdigit():
        parse("x")
    lookup("x")
    return Response("unreachable")


def app() -> Starlette:
    return Starlette(routes=[Route("/items/{item_id}", item)])


async def fail_four_times(observed: Any) -> None:
    transport = httpx.ASGITransport(app=observed, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for path in ("/items/1", "/items/2", "/items/a", "/items/b"):
            assert 500 == (await client.get(path)).status_code


def observed_with(viewer: Viewer, notifier: Notifier | None) -> Any:
    return observe(
        app(), configure=False, install_propagator=False, registry=CollectorRegistry(),
        sentry=False, notify=notifier if notifier is not None else False, viewer=viewer,
    )  # fmt: skip


async def test_the_viewer_groups_by_the_notification_fingerprint(receiver: ChatReceiver) -> None:
    notifier = Notifier(
        [WebhookDestination(f"{receiver.url}/hook")], options=NotifyOptions(retries=0)
    )
    viewer = Viewer()
    try:
        await fail_four_times(observed_with(viewer, notifier))
        assert notifier.force_flush(5000)
    finally:
        notifier.close()
    sent = {hook["fingerprint"] for hook in receiver.bodies("/hook") if hook["kind"] == "exception"}
    groups = viewer.errors.groups()
    assert 2 == len(sent)
    assert sent == {group["fingerprint"][0] for group in groups}
    assert [2, 2] == [group["count"] for group in groups]


async def test_without_notifications_the_viewer_keeps_its_own_grouping() -> None:
    viewer = Viewer()
    await fail_four_times(observed_with(viewer, None))
    assert [(["ValueError", "/items/{item_id}"], 4)] == [
        (group["fingerprint"], group["count"]) for group in viewer.errors.groups()
    ]


async def test_a_fingerprint_given_to_the_viewer_wins(receiver: ChatReceiver) -> None:
    notifier = Notifier(
        [WebhookDestination(f"{receiver.url}/hook")], options=NotifyOptions(retries=0)
    )
    viewer = Viewer(fingerprint=lambda event: "all")
    try:
        await fail_four_times(observed_with(viewer, notifier))
    finally:
        notifier.close()
    assert [(["all"], 4)] == [(g["fingerprint"], g["count"]) for g in viewer.errors.groups()]
