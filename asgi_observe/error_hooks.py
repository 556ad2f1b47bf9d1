"""Hand exceptions that a framework turns into a 500 itself to the shared request record.

Starlette and FastAPI re-raise an unhandled exception after sending their 500 page, so
the tracing and Sentry layers see it. Litestar and Quart answer the 500 and swallow the
exception; without these hooks the span would only say "500" and Sentry would see no
exception at all. Frameworks are recognised by duck typing, never imported here.
"""

from __future__ import annotations

import sys
from typing import Any

from ._request import record_of
from ._types import Scope

__all__ = ["register_error_hooks"]

_MARKER = "_asgi_observe_error_hooks"


def register_error_hooks(app: Any) -> bool:
    """Register the error hook of a Litestar or Quart app; False for any other app.

    The exception is stored in the request record; the tracing layer records it on
    the span and the Sentry layer reports it when the response is a 5xx. Registering
    twice on the same app does nothing. Since 0.1.0.
    """
    if _is_instance(app, "litestar", "Litestar"):
        if _litestar_hook not in app.after_exception:  # Litestar apps take no new attributes
            app.after_exception.append(_litestar_hook)
        return True
    if _is_instance(app, "quart", "Quart"):
        if not getattr(app, _MARKER, False):
            _connect_quart(app)
            setattr(app, _MARKER, True)
        return True
    return False


def _is_instance(app: Any, module: str, name: str) -> bool:
    cls = getattr(sys.modules.get(module), name, None)  # not imported: cannot be one
    return isinstance(cls, type) and isinstance(app, cls)


async def _litestar_hook(exc: BaseException, scope: Scope) -> None:
    record = record_of(scope)
    if record is not None:
        record.exception = exc


def _connect_quart(app: Any) -> None:
    from quart import has_request_context, request, websocket
    from quart.signals import got_request_exception, got_websocket_exception

    def hand_over(sender: Any, exception: BaseException, **extra: Any) -> None:
        connection: Any = request if has_request_context() else websocket
        record = record_of(connection.scope)
        if record is not None:
            record.exception = exception

    # weak=False: the receiver is a closure that would otherwise be collected at once.
    got_request_exception.connect(hand_over, app, weak=False)
    got_websocket_exception.connect(hand_over, app, weak=False)
