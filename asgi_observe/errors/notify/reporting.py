"""report_error(): a notification for an exception the code caught itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from asgi_observe.errors.notify.notifier import Notifier

__all__ = ["get_notifier", "report_error", "set_notifier"]

Level = Literal["debug", "info", "warning", "error", "critical"]

_notifier: Notifier | None = None


def set_notifier(notifier: Notifier | None) -> None:
    """Make `notifier` the one `report_error` uses (observe() does this). Since 0.1.0."""
    global _notifier
    if notifier is not None and not isinstance(notifier, Notifier):
        raise TypeError("notifier must be an asgi_observe Notifier or None")
    _notifier = notifier


def get_notifier() -> Notifier | None:
    """The notifier `report_error` uses, if one was set up. Since 0.1.0."""
    return _notifier


def report_error(
    exc: BaseException,
    level: Level = "error",
    additional_context: Mapping[str, Any] | None = None,
    *,
    notifier: Notifier | None = None,
) -> bool:
    """Send a notification for `exc`, which the caller handled itself.

    Shares deduplication, rate limit and scrubbing with unhandled exceptions (the same
    fingerprint: a reported exception that is then re-raised gives one message). Inside a
    request served by observe(), the message names the request's route, request id and
    trace. `additional_context` appears as ``key: value`` lines, scrubbed (values under
    sensitive names are redacted). Never raises, never blocks on the network.

    Args:
        exc: the exception.
        level: "debug", "info", "warning", "error" or "critical" (shown in the message).
        additional_context: extra facts for the message.
        notifier: the notifier to use; the one observe() or configure_notifications()
            set up when None.

    Returns:
        True when a message was queued; False when deduplicated, rate limited, or no
        notifier is set up.

    Since 0.1.0.
    """
    target = notifier if notifier is not None else _notifier
    if target is None:
        return False
    return target.notify_exception(exc, kind="manual", level=level, context=additional_context)
