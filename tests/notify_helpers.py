"""Shared pieces of the notification tests: a notifier aimed at the chat receiver, an app
stack, and the secrets planted in requests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
from chat_receiver import TOKEN, ChatReceiver
from opentelemetry import propagate

from asgi_observe.errors.notify import (
    Identity,
    Notifier,
    NotifyLogHandler,
    NotifyOptions,
    SlackDestination,
    TelegramDestination,
    WebhookDestination,
    set_notifier,
)
from asgi_observe.logs.correlation import uninstall_log_record_factory

HEADER_SECRET = "PLANTED-header-SECRET-0001"
QUERY_SECRET = "PLANTEDquerySECRET0002"
LOCAL_SECRET = "PLANTED-local-SECRET-0003"
CONTEXT_SECRET = "PLANTED-context-SECRET-0004"
COOKIE_SECRET = "PLANTED-cookie-SECRET-0005"
SECRETS = (HEADER_SECRET, QUERY_SECRET, LOCAL_SECRET, CONTEXT_SECRET, COOKIE_SECRET, TOKEN)
SECRET_HEADERS = {"authorization": f"Bearer {HEADER_SECRET}", "cookie": f"sid={COOKIE_SECRET}"}
SECRET_QUERY = f"api_key={QUERY_SECRET}&page=2"
IDENTITY = Identity(
    service="checkout",
    environment="production",
    release="1.4.2",
    trace_url="https://tempo.example/trace/{trace_id}",
)


def destinations(
    receiver: ChatReceiver, *, chats: Sequence[int | str] = (-1001234567890,)
) -> list[Any]:
    found: list[Any] = [TelegramDestination(TOKEN, chat, api_url=receiver.url) for chat in chats]
    found.append(SlackDestination(f"{receiver.url}/slack/T000/B000/XXXXSECRETPATH"))
    return found


def notifier_for(
    receiver: ChatReceiver,
    *,
    webhook: bool = False,
    only: str | None = None,
    **options: Any,
) -> Notifier:
    targets = destinations(receiver)
    if webhook:
        targets.append(WebhookDestination(f"{receiver.url}/hook"))
    if only is not None:
        targets = [t for t in targets if t.kind == only]
    options.setdefault("identity", IDENTITY)
    options.setdefault("retries", 2)
    options.setdefault("timeout", 2.0)
    return Notifier(targets, options=NotifyOptions(**options))


@contextmanager
def clean_globals() -> Iterator[None]:
    textmap = propagate.get_global_textmap()
    try:
        yield
    finally:
        propagate.set_global_textmap(textmap)
        uninstall_log_record_factory()
        set_notifier(None)
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, NotifyLogHandler):
                root.removeHandler(handler)


async def get_many(app: Any, paths: Sequence[str], **kwargs: Any) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return list(await asyncio.gather(*(client.get(path, **kwargs) for path in paths)))
