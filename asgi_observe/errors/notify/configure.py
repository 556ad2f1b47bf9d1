"""configure_notifications(): a Notifier from arguments and ASGI_OBSERVE_* variables."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from asgi_observe.errors.notify.notifier import Notifier
from asgi_observe.errors.notify.reporting import set_notifier
from asgi_observe.errors.notify.settings import read_notify_settings
from asgi_observe.scrub import Scrubber

__all__ = ["configure_notifications"]


def configure_notifications(
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
    scrubber: Scrubber | None = None,
    ignore_exceptions: Iterable[type[BaseException]] = (),
    environ: Mapping[str, str] | None = None,
) -> Notifier | None:
    """Build the `Notifier` the arguments and variables describe; None if no destination.

    Arguments win over the ``ASGI_OBSERVE_*`` variables (listed in docs/notifications.md;
    `dedup_window` is in seconds, ``ASGI_OBSERVE_NOTIFY_DEDUP_MINUTES`` in minutes).
    Everything is validated first: a bad value raises ValueError naming the variable or
    argument. The notifier becomes the one `report_error` uses. Since 0.1.0.
    """
    settings = read_notify_settings(
        os.environ if environ is None else environ,
        telegram_bot_token=telegram_bot_token,
        telegram_chat_ids=telegram_chat_ids,
        telegram_api_url=telegram_api_url,
        slack_webhook_url=slack_webhook_url,
        discord_webhook_url=discord_webhook_url,
        webhook_url=webhook_url,
        notify_on=notify_on,
        dedup_window=dedup_window,
        rate_limit=rate_limit,
        timeout=timeout,
        trace_url=trace_url,
        service_name=service_name,
        environment=environment,
        release=release,
    )
    if not settings.configured:
        return None
    notifier = Notifier(
        settings.destinations(),
        options=settings.options,
        scrubber=scrubber,
        ignore_exceptions=ignore_exceptions,
    )
    set_notifier(notifier)
    return notifier
