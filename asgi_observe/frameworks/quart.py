"""Quart hooks: Quart routes inside the app and publishes nothing in the scope, and it
answers an unhandled exception with a 500 itself instead of re-raising it."""

from __future__ import annotations

import sys
from typing import Any

from asgi_observe._core.record import record_of
from asgi_observe.frameworks.routes import ROUTE_KEY
from asgi_observe.frameworks.templates import brace_template

_MARKER = "_asgi_observe_route_hook"
_ERROR_MARKER = "_asgi_observe_error_hooks"


def is_quart_app(app: Any) -> bool:
    """True when `app` is a Quart application; never imports Quart.

    Since 0.1.0
    """
    quart = sys.modules.get("quart")  # not imported yet: `app` cannot be a Quart app
    quart_class = getattr(quart, "Quart", None)
    return isinstance(quart_class, type) and isinstance(app, quart_class)


def register_quart_route_hook(quart_app: Any) -> None:
    """Make a Quart app publish its matched url rule under `scope[ROUTE_KEY]`.

    Registers a url value preprocessor, which Quart runs before every
    `before_request` function, for requests and websockets alike. Calling it twice on
    the same app registers the hook once. Quart is imported only when this is called.

    Since 0.1.0
    """
    if getattr(quart_app, _MARKER, False):
        return

    def publish_route(endpoint: str | None, values: dict[str, Any] | None) -> None:
        connection = _current_connection()
        rule = connection.url_rule
        if rule is not None:
            # request.scope is the dict the server (and our middlewares) passed in.
            # `<int:item_id>` is published as `{item_id}`, as every framework's (templates.py).
            connection.scope[ROUTE_KEY] = brace_template(rule.rule)

    quart_app.url_value_preprocessor(publish_route)
    setattr(quart_app, _MARKER, True)


def register_quart_error_hook(quart_app: Any) -> None:
    """Hand exceptions Quart answers with a 500 to the request record (error_hooks.py).

    Connects to Quart's ``got_request_exception`` and ``got_websocket_exception``
    signals for this app; calling it twice connects once. Since 0.1.0
    """
    if getattr(quart_app, _ERROR_MARKER, False):
        return
    from quart.signals import got_request_exception, got_websocket_exception

    def hand_over(sender: Any, exception: BaseException, **extra: Any) -> None:
        record = record_of(_current_connection().scope)
        if record is not None:
            record.exception = exception

    # weak=False: the receiver is a closure that would otherwise be collected at once.
    got_request_exception.connect(hand_over, quart_app, weak=False)
    got_websocket_exception.connect(hand_over, quart_app, weak=False)
    setattr(quart_app, _ERROR_MARKER, True)


def _current_connection() -> Any:
    # The request or websocket being handled; its scope is the dict the server (and our
    # middlewares) passed in.
    from quart import has_request_context, request, websocket

    return request if has_request_context() else websocket
