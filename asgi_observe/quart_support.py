"""The one hook Quart needs: Quart routes inside the app and publishes nothing in the scope."""

from __future__ import annotations

import sys
from typing import Any

from .routes import ROUTE_KEY

_MARKER = "_asgi_observe_route_hook"


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
    from quart import has_request_context, request, websocket

    def publish_route(endpoint: str | None, values: dict[str, Any] | None) -> None:
        connection: Any = request if has_request_context() else websocket
        rule = connection.url_rule
        if rule is not None:
            # request.scope is the dict the server (and our middlewares) passed in.
            connection.scope[ROUTE_KEY] = rule.rule

    quart_app.url_value_preprocessor(publish_route)
    setattr(quart_app, _MARKER, True)
