"""Errors: the Sentry layer, its event and policy helpers, framework error hooks.

sentry-sdk is an optional extra: nothing here imports it until `errors.sentry` is used.
"""

from __future__ import annotations

from asgi_observe.errors.hooks import register_error_hooks

__all__ = ["register_error_hooks"]
