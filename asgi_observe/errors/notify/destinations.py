"""Where notifications go: a Telegram chat, a Slack, Discord or generic JSON webhook.

A destination turns a report into one HTTP request and reads the answer. It holds a
secret (the bot token, or the webhook URL itself), which never appears in its repr, its
label or any text it returns: `redact` takes it out of anything we might log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from asgi_observe.errors.notify.formatting import render
from asgi_observe.errors.notify.payload import json_payload
from asgi_observe.errors.notify.report import ErrorReport
from asgi_observe.errors.notify.transport import Outgoing, Response, retry_after_header
from asgi_observe.scrub import Scrubber

__all__ = [
    "DiscordDestination",
    "SlackDestination",
    "TelegramDestination",
    "WebhookDestination",
    "redactor",
]

TELEGRAM_API_URL = "https://api.telegram.org"
TELEGRAM_LIMIT = 4096
"""sendMessage: "Text of the message to be sent, 1-4096 characters after entities parsing".
We count the text before parsing, in UTF-16 code units, which is never less."""
SLACK_LIMIT = 3900
"""Slack truncates a message's text after 40,000 characters and shows long ones folded;
an error report stays readable below 4,000."""
DISCORD_LIMIT = 2000
"""Execute Webhook: ``content`` holds at most 2000 characters."""
_FILTERED = "[Filtered]"
_JSON = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "asgi-observe"}
_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]+")


class _Destination:
    kind = ""
    _secrets: tuple[str, ...] = ()
    label = ""

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, _FILTERED)
        return text

    def accepted(self, response: Response) -> bool:
        return True

    def retry_after(self, response: Response) -> float | None:
        return retry_after_header(response.headers)

    def describe(self, response: Response) -> str:
        text = response.body[:200].decode("utf-8", "replace").strip()
        return f"HTTP {response.status}" + (f": {text}" if text else "")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"


def _webhook_url(option: str, url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The URL is a secret: the error names the option, never the value.
        raise ValueError(f"{option}: expected an http(s) URL")
    return url.strip()


class TelegramDestination(_Destination):
    """One Telegram chat (and forum topic), through the Bot API's ``sendMessage``.

    Args:
        token: the bot token from @BotFather (``123456:ABC...``).
        chat_id: the chat's numeric id (negative for groups) or ``@channelusername``.
        thread_id: a forum topic's ``message_thread_id``, or None.
        api_url: the Bot API's base URL (a local server in tests).

    Since 0.1.0.
    """

    kind = "telegram"

    def __init__(
        self,
        token: str,
        chat_id: int | str,
        *,
        thread_id: int | None = None,
        api_url: str = TELEGRAM_API_URL,
    ) -> None:
        if not isinstance(token, str) or not _TOKEN.fullmatch(token.strip()):
            raise ValueError("telegram token: expected a bot token such as 123456:ABC-DEF")
        self._token = token.strip()
        self._secrets = (self._token, self._token.partition(":")[2])
        self.chat_id = chat_id
        self.thread_id = thread_id
        base = _webhook_url("telegram api_url", api_url).rstrip("/")
        self._url = f"{base}/bot{self._token}/sendMessage"
        topic = f" topic {thread_id}" if thread_id is not None else ""
        self.label = f"telegram chat {chat_id}{topic}"

    def outgoing(self, report: ErrorReport) -> Outgoing:
        body: dict[str, Any] = {
            "chat_id": self.chat_id,
            "text": render(report, "telegram", TELEGRAM_LIMIT),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        if self.thread_id is not None:
            body["message_thread_id"] = self.thread_id
        return Outgoing(self._url, json.dumps(body).encode(), _JSON)

    def accepted(self, response: Response) -> bool:
        return _json(response).get("ok", True) is not False

    def retry_after(self, response: Response) -> float | None:
        # Bot API: a 429 carries ResponseParameters.retry_after (seconds) in "parameters".
        parameters = _json(response).get("parameters")
        value = parameters.get("retry_after") if isinstance(parameters, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
        return retry_after_header(response.headers)

    def describe(self, response: Response) -> str:
        answer = _json(response)
        description = answer.get("description")
        text = f"HTTP {response.status}"
        if isinstance(description, str) and description:
            text += f": {description[:200]}"
        parameters = answer.get("parameters")
        migrated = parameters.get("migrate_to_chat_id") if isinstance(parameters, dict) else None
        if migrated is not None:
            text += f" (the group is now a supergroup: use chat id {migrated})"
        elif response.status == 401:
            text += " (the bot token is wrong or was revoked)"
        elif response.status in (400, 403) and "chat" in text.lower():
            text += " (check the chat id, and that the bot is a member of the chat)"
        return text


class SlackDestination(_Destination):
    """A Slack incoming webhook (``https://hooks.slack.com/services/...``). Since 0.1.0."""

    kind = "slack"

    def __init__(self, url: str) -> None:
        self._url = _webhook_url("slack webhook url", url)
        self._secrets = (self._url, urlsplit(self._url).path)
        self.label = f"slack webhook ({urlsplit(self._url).hostname})"

    def outgoing(self, report: ErrorReport) -> Outgoing:
        body = {"text": render(report, "slack", SLACK_LIMIT), "unfurl_links": False}
        return Outgoing(self._url, json.dumps(body).encode(), _JSON)


class DiscordDestination(_Destination):
    """A Discord channel webhook; mentions in error text never ping anyone. Since 0.1.0."""

    kind = "discord"

    def __init__(self, url: str) -> None:
        self._url = _webhook_url("discord webhook url", url)
        self._secrets = (self._url, urlsplit(self._url).path)
        self.label = f"discord webhook ({urlsplit(self._url).hostname})"

    def outgoing(self, report: ErrorReport) -> Outgoing:
        body = {
            "content": render(report, "discord", DISCORD_LIMIT),
            "allowed_mentions": {"parse": []},
        }
        return Outgoing(self._url, json.dumps(body).encode(), _JSON)

    def retry_after(self, response: Response) -> float | None:
        # Discord's 429 body: {"message": ..., "retry_after": seconds, "global": bool}.
        value = _json(response).get("retry_after")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
        return retry_after_header(response.headers)

    def describe(self, response: Response) -> str:
        message = _json(response).get("message")
        if isinstance(message, str) and message:
            return f"HTTP {response.status}: {message[:200]}"
        return super().describe(response)


class WebhookDestination(_Destination):
    """Any URL that takes the JSON payload documented in docs/notifications.md. Since 0.1.0."""

    kind = "webhook"

    def __init__(self, url: str) -> None:
        self._url = _webhook_url("webhook url", url)
        parts = urlsplit(self._url)
        self._secrets = (self._url, parts.path + (f"?{parts.query}" if parts.query else ""))
        self.label = f"webhook ({parts.hostname})"

    def outgoing(self, report: ErrorReport) -> Outgoing:
        return Outgoing(self._url, json.dumps(json_payload(report)).encode(), _JSON)


def _json(response: Response) -> dict[str, Any]:
    try:
        value = json.loads(response.body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


Destination = TelegramDestination | SlackDestination | DiscordDestination | WebhookDestination


def redactor(destinations: Iterable[Destination], scrubber: Scrubber) -> Callable[[str], str]:
    """Redact text we log from a destination's answer: it is untrusted and may repeat any
    destination's token or URL, or hold a ``token=...`` of its own."""
    found = {s for d in destinations for s in getattr(d, "_secrets", ()) if s}
    secrets = sorted(found, key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, _FILTERED)
        scrubbed = scrubber.scrub_event({"message": text})
        message = scrubbed.get("message") if isinstance(scrubbed, dict) else None
        return message if isinstance(message, str) else _FILTERED

    return redact
