"""Sentry from SENTRY_* settings: validated before anything is installed, then initialised."""

from __future__ import annotations

import sys

from asgi_observe.setup.settings import Settings


def check_sentry(dsn: str | None) -> None:
    if not dsn:
        return
    try:
        from sentry_sdk.utils import BadDsn, Dsn
    except ImportError:
        raise ValueError(
            "SENTRY_DSN is set but sentry-sdk is not installed: pip install sentry-sdk"
        ) from None
    try:
        Dsn(dsn)
    except BadDsn as exc:
        raise ValueError(f"SENTRY_DSN: not a valid DSN ({exc})") from None


def init_sentry(settings: Settings) -> bool:
    if not settings.sentry_dsn:
        loaded = sys.modules.get("sentry_sdk")  # never imported just to look
        return bool(loaded is not None and loaded.get_client().is_active())
    import sentry_sdk

    if not sentry_sdk.get_client().is_active():  # a client the app set up is kept
        sentry_sdk.init(
            dsn=settings.sentry_dsn,
            environment=settings.sentry_environment,
            release=settings.sentry_release,
            traces_sample_rate=settings.sentry_traces_sample_rate,
            # SentryMiddleware captures requests; the framework integrations would
            # wrap the same requests a second time.
            auto_enabling_integrations=False,
        )
    return True
