"""Notification settings from arguments and ASGI_OBSERVE_* variables, validated up front.

Like the OTEL_* variables (setup/settings.py), a bad value raises ValueError naming the
variable (or argument) at startup, never mid-request. The value of a secret variable (the
bot token, a webhook URL) is never repeated in the error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from asgi_observe.errors.notify.collect import Identity
from asgi_observe.errors.notify.destinations import (
    TELEGRAM_API_URL,
    Destination,
    DiscordDestination,
    SlackDestination,
    TelegramDestination,
    WebhookDestination,
)
from asgi_observe.errors.notify.options import EVENTS, NotifyOptions

__all__ = ["VARIABLES", "NotifySettings", "read_notify_settings"]

TOKEN_VAR = "ASGI_OBSERVE_TELEGRAM_BOT_TOKEN"
CHATS_VAR = "ASGI_OBSERVE_TELEGRAM_CHAT_IDS"
TELEGRAM_URL_VAR = "ASGI_OBSERVE_TELEGRAM_API_URL"
SLACK_VAR = "ASGI_OBSERVE_SLACK_WEBHOOK_URL"
DISCORD_VAR = "ASGI_OBSERVE_DISCORD_WEBHOOK_URL"
WEBHOOK_VAR = "ASGI_OBSERVE_NOTIFY_WEBHOOK_URL"
EVENTS_VAR = "ASGI_OBSERVE_NOTIFY_ON"
DEDUP_VAR = "ASGI_OBSERVE_NOTIFY_DEDUP_MINUTES"
RATE_VAR = "ASGI_OBSERVE_NOTIFY_RATE_LIMIT"
TIMEOUT_VAR = "ASGI_OBSERVE_NOTIFY_TIMEOUT"
TRACE_URL_VAR = "ASGI_OBSERVE_TRACE_URL"
VARIABLES = (
    TOKEN_VAR, CHATS_VAR, TELEGRAM_URL_VAR, SLACK_VAR, DISCORD_VAR, WEBHOOK_VAR,
    EVENTS_VAR, DEDUP_VAR, RATE_VAR, TIMEOUT_VAR, TRACE_URL_VAR,
)  # fmt: skip
_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]+")
_CHAT = re.compile(r"(-?\d+|@[A-Za-z][A-Za-z0-9_]{3,})(?::(\d+))?")


@dataclass(frozen=True)
class NotifySettings:
    """Where notifications go and how; secrets are kept out of the repr."""

    telegram_token: str | None = field(default=None, repr=False)
    telegram_chats: tuple[tuple[int | str, int | None], ...] = ()
    telegram_api_url: str = TELEGRAM_API_URL
    slack_urls: tuple[str, ...] = field(default=(), repr=False)
    discord_urls: tuple[str, ...] = field(default=(), repr=False)
    webhook_urls: tuple[str, ...] = field(default=(), repr=False)
    options: NotifyOptions = field(default_factory=NotifyOptions)

    @property
    def configured(self) -> bool:
        """At least one destination is set."""
        return bool(
            self.telegram_chats or self.slack_urls or self.discord_urls or self.webhook_urls
        )

    def destinations(self) -> list[Destination]:
        found: list[Destination] = []
        if self.telegram_token:
            found += [
                TelegramDestination(
                    self.telegram_token, chat, thread_id=topic, api_url=self.telegram_api_url
                )
                for chat, topic in self.telegram_chats
            ]
        found += [SlackDestination(url) for url in self.slack_urls]
        found += [DiscordDestination(url) for url in self.discord_urls]
        found += [WebhookDestination(url) for url in self.webhook_urls]
        return found


def read_notify_settings(
    env: Mapping[str, str],
    *,
    telegram_bot_token: str | None = None,
    telegram_chat_ids: str | Sequence[int | str] | None = None,
    telegram_api_url: str | None = None,
    slack_webhook_url: str | Sequence[str] | None = None,
    discord_webhook_url: str | Sequence[str] | None = None,
    webhook_url: str | Sequence[str] | None = None,
    notify_on: str | Iterable[str] | None = None,
    dedup_window: float | None = None,
    rate_limit: int | None = None,
    timeout: float | None = None,
    trace_url: str | None = None,
    service_name: str | None = None,
    environment: str | None = None,
    release: str | None = None,
) -> NotifySettings:
    """Validate the notification variables, arguments winning; ValueError names a bad one."""
    token_name, token = _pick(telegram_bot_token, "telegram_bot_token", env, TOKEN_VAR)
    if token is not None and not _TOKEN.fullmatch(token):
        raise ValueError(f"{token_name}: expected a bot token from @BotFather, e.g. 123456:ABC-DEF")
    chats_name, chats_raw = _pick(telegram_chat_ids, "telegram_chat_ids", env, CHATS_VAR)
    chats = _chats(chats_name, chats_raw) if chats_raw is not None else ()
    if token is not None and not chats:
        raise ValueError(f"{CHATS_VAR}: set the chat ids the bot token {TOKEN_VAR} sends to")
    if chats and token is None:
        raise ValueError(f"{TOKEN_VAR}: set the bot token for the chats in {CHATS_VAR}")
    api_name, api_url = _pick(telegram_api_url, "telegram_api_url", env, TELEGRAM_URL_VAR)
    events_name, events_raw = _pick(notify_on, "notify_on", env, EVENTS_VAR)
    options = NotifyOptions(
        identity=_identity(env, service_name, environment, release, trace_url),
        events=_events(events_name, events_raw),
        dedup_window=_dedup(env, dedup_window),
        rate_limit=_rate(env, rate_limit),
        timeout=_timeout(env, timeout),
    )
    return NotifySettings(
        telegram_token=token,
        telegram_chats=chats,
        telegram_api_url=_url(api_name, api_url, secret=False) if api_url else TELEGRAM_API_URL,
        slack_urls=_urls(*_pick(slack_webhook_url, "slack_webhook_url", env, SLACK_VAR)),
        discord_urls=_urls(*_pick(discord_webhook_url, "discord_webhook_url", env, DISCORD_VAR)),
        webhook_urls=_urls(*_pick(webhook_url, "webhook_url", env, WEBHOOK_VAR)),
        options=options,
    )


def _pick(
    argument: Any, argument_name: str, env: Mapping[str, str], variable: str
) -> tuple[str, Any]:
    """(name to blame, value): the argument when given, else the variable when non-empty."""
    if argument is not None:
        return argument_name, argument
    raw = env.get(variable, "").strip()
    return variable, raw or None


def _items(raw: str | Iterable[Any]) -> list[str]:
    parts = raw.split(",") if isinstance(raw, str) else [str(item) for item in raw]
    return [part.strip() for part in parts if part.strip()]


def _chats(name: str, raw: str | Sequence[int | str]) -> tuple[tuple[int | str, int | None], ...]:
    chats: list[tuple[int | str, int | None]] = []
    for item in _items(raw):
        match = _CHAT.fullmatch(item)
        if match is None:
            raise ValueError(
                f"{name}: {item!r} is not a chat id (-1001234567890, @channel, or id:topic)"
            )
        chat, topic = match.group(1), match.group(2)
        chats.append((chat if chat.startswith("@") else int(chat), int(topic) if topic else None))
    return tuple(dict.fromkeys(chats))


def _url(name: str, raw: str, *, secret: bool) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = "" if secret else f" {raw!r}"
        raise ValueError(f"{name}:{shown} expected an http:// or https:// URL")
    try:
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError:
        raise ValueError(f"{name}: the port is not a number between 0 and 65535") from None
    return raw


def _urls(name: str, raw: str | Sequence[str] | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    return tuple(dict.fromkeys(_url(name, item, secret=True) for item in _items(raw)))


def _events(name: str, raw: str | Iterable[str] | None) -> frozenset[str]:
    if raw is None:
        return frozenset({"exceptions"})
    chosen = {item.lower() for item in _items(raw)}
    if chosen == {"none"}:
        return frozenset()
    if "none" in chosen:
        raise ValueError(f"{name}: 'none' turns every event off and cannot be combined")
    unknown = sorted(chosen - EVENTS)
    if unknown:
        supported = ", ".join(sorted(EVENTS))
        raise ValueError(f"{name}: unknown {', '.join(unknown)} (supported: {supported}, none)")
    return frozenset(chosen)


def _number(name: str, raw: Any, *, minimum: float, integer: bool = False) -> float:
    try:
        value = float(raw) if not integer else int(str(raw).strip())
    except (TypeError, ValueError):
        wanted = "an integer" if integer else "a number"
        raise ValueError(f"{name}={raw!r}: expected {wanted}") from None
    if isinstance(raw, bool) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name}={raw!r}: expected a number >= {minimum:g}")
    return value


def _dedup(env: Mapping[str, str], seconds: float | None) -> float:
    if seconds is not None:
        return _number("dedup_window", seconds, minimum=0)
    raw = env.get(DEDUP_VAR, "").strip()
    return _number(DEDUP_VAR, raw, minimum=0) * 60 if raw else 300.0


def _rate(env: Mapping[str, str], argument: int | None) -> int:
    name, raw = _pick(argument, "rate_limit", env, RATE_VAR)
    return int(_number(name, raw, minimum=1, integer=True)) if raw is not None else 20


def _timeout(env: Mapping[str, str], argument: float | None) -> float:
    name, raw = _pick(argument, "timeout", env, TIMEOUT_VAR)
    if raw is None:
        return 5.0
    value = _number(name, raw, minimum=0)
    if value == 0:
        raise ValueError(f"{name}={raw!r}: expected a number of seconds > 0")
    return value


def _identity(
    env: Mapping[str, str],
    service_name: str | None,
    environment: str | None,
    release: str | None,
    trace_url: str | None,
) -> Identity:
    resource = _resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    name, template = _pick(trace_url, "trace_url", env, TRACE_URL_VAR)
    if template is not None:
        _url(name, template.replace("{trace_id}", "0"), secret=False)
        if "{trace_id}" not in template:
            raise ValueError(f"{name}={template!r}: expected a URL containing {{trace_id}}")
    return Identity(
        service=service_name
        or env.get("OTEL_SERVICE_NAME", "").strip()
        or resource.get("service.name")
        or "unknown_service",
        environment=environment
        or resource.get("deployment.environment.name")
        or resource.get("deployment.environment")
        or env.get("SENTRY_ENVIRONMENT", "").strip()
        or None,
        release=release
        or resource.get("service.version")
        or env.get("SENTRY_RELEASE", "").strip()
        or None,
        trace_url=template,
    )


def _resource_attributes(raw: str) -> dict[str, str]:
    # The OTEL_RESOURCE_ATTRIBUTES form: key=value pairs, comma-separated, percent-encoded.
    found = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            found[key.strip()] = unquote(value.strip())
    return found
