"""Error notifications to Telegram, Slack, Discord or any JSON webhook (docs/notifications.md).

Standard library only: messages are sent with urllib from one daemon thread per
destination. Nothing starts at import or construction; the first message starts its thread.
"""

from __future__ import annotations

from asgi_observe.errors.notify.collect import Identity
from asgi_observe.errors.notify.configure import configure_notifications
from asgi_observe.errors.notify.destinations import (
    DiscordDestination,
    SlackDestination,
    TelegramDestination,
    WebhookDestination,
)
from asgi_observe.errors.notify.fingerprint import exception_fingerprint, fingerprint
from asgi_observe.errors.notify.log_handler import NotifyLogHandler, install_log_handler
from asgi_observe.errors.notify.middleware import NotifyMiddleware
from asgi_observe.errors.notify.notifier import Notifier
from asgi_observe.errors.notify.options import EVENTS, NotifyOptions
from asgi_observe.errors.notify.report import ErrorReport, Frame
from asgi_observe.errors.notify.reporting import get_notifier, report_error, set_notifier

__all__ = [
    "EVENTS",
    "DiscordDestination",
    "ErrorReport",
    "Frame",
    "Identity",
    "Notifier",
    "NotifyLogHandler",
    "NotifyMiddleware",
    "NotifyOptions",
    "SlackDestination",
    "TelegramDestination",
    "WebhookDestination",
    "configure_notifications",
    "exception_fingerprint",
    "fingerprint",
    "get_notifier",
    "install_log_handler",
    "report_error",
    "set_notifier",
]
