"""The old path of `asgi_observe.errors.hooks`, kept so documented imports keep working."""

from __future__ import annotations

from asgi_observe.errors.hooks import (
    register_error_hooks,
)

__all__ = [
    "register_error_hooks",
]
