"""Hand exceptions that a framework turns into a 500 itself to the shared request record.

Starlette and FastAPI re-raise an unhandled exception after sending their 500 page, so
the tracing and Sentry layers see it. Litestar, Quart and Django answer the 500 and swallow
the exception; without these hooks the span would only say "500" and Sentry would see no
exception at all. Frameworks are recognised by duck typing, never imported here.
"""

from __future__ import annotations

import sys
from typing import Any

from asgi_observe._core.record import record_of
from asgi_observe._core.types import Scope
from asgi_observe.frameworks.django import is_django_handler, register_django_error_hook
from asgi_observe.frameworks.quart import is_quart_app, register_quart_error_hook

__all__ = ["register_error_hooks"]


def register_error_hooks(app: Any) -> bool:
    """Register the error hook of a Litestar, Quart or Django app; False for any other.

    The exception is stored in the request record; the tracing layer records it on
    the span and the Sentry layer reports it when the response is a 5xx. Registering
    twice on the same app does nothing. Since 0.1.0.
    """
    if _is_litestar_app(app):
        if _litestar_hook not in app.after_exception:  # Litestar apps take no new attributes
            app.after_exception.append(_litestar_hook)
        return True
    if is_quart_app(app):
        register_quart_error_hook(app)
        return True
    if is_django_handler(app):
        register_django_error_hook()
        return True
    return False


def _is_litestar_app(app: Any) -> bool:
    # Litestar not imported yet: `app` cannot be a Litestar app.
    litestar_class = getattr(sys.modules.get("litestar"), "Litestar", None)
    return isinstance(litestar_class, type) and isinstance(app, litestar_class)


async def _litestar_hook(exc: BaseException, scope: Scope) -> None:
    record = record_of(scope)
    if record is not None:
        record.exception = exc
