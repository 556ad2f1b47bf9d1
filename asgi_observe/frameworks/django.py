"""Django hooks: Django routes inside its handler and answers a view's exception itself.

Django publishes the route it resolved as `request.resolver_match.route` (the prefixes
of `include()` joined in), on a request whose `.scope` is the dict our layers passed
in. The route hook copies it into `scope[ROUTE_KEY]` right after Django resolved the
URL; nothing is matched again. The error hook takes the exception Django turns into a
500 from its `got_request_exception` signal, which Django sends before rendering that
500 (its handler swallows the exception, as Quart's does). Django is imported only when
a Django handler is handed in.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from asgi_observe._core.record import record_of
from asgi_observe.frameworks.routes import ROUTE_KEY
from asgi_observe.frameworks.templates import readable_route

__all__ = [
    "is_django_handler",
    "publish_django_route",
    "register_django_error_hook",
    "register_django_route_hook",
]

_MARKER = "_asgi_observe_route_hook"
_DISPATCH_UID = "asgi_observe.frameworks.django.hand_over"
_logger = logging.getLogger("asgi_observe.frameworks")


def is_django_handler(app: Any) -> bool:
    """True when `app` is Django's ASGI handler (`get_asgi_application()`); never imports
    Django.

    Since 0.1.0
    """
    module = sys.modules.get("django.core.handlers.asgi")  # not loaded: cannot be one
    handler_class = getattr(module, "ASGIHandler", None)
    return isinstance(handler_class, type) and isinstance(app, handler_class)


def register_django_route_hook(handler: Any) -> bool:
    """Make a Django ASGI handler publish the route it resolved under `scope[ROUTE_KEY]`.

    Wraps this handler's `resolve_request` (Django's own step that resolves the URL and
    sets `request.resolver_match`), for this handler only. Calling it twice wraps
    once. Returns False, after logging why, when the handler has no such step.

    Since 0.1.0
    """
    if getattr(handler, _MARKER, False):
        return True
    resolve = getattr(handler, "resolve_request", None)
    if not callable(resolve):
        _logger.warning(
            "This Django handler has no resolve_request(); route templates stay _unmatched "
            "(see docs/frameworks/django.md)"
        )
        return False

    def resolve_request(request: Any) -> Any:
        match = resolve(request)  # raises Resolver404 when nothing matched: no route
        publish_django_route(request, match)
        return match

    handler.resolve_request = resolve_request
    setattr(handler, _MARKER, True)
    return True


def publish_django_route(request: Any, match: Any) -> None:
    """Write the readable template of `match.route` into the request's ASGI scope.

    Since 0.1.0
    """
    route = getattr(match, "route", None)
    scope = getattr(request, "scope", None)
    if isinstance(route, str) and isinstance(scope, dict):
        scope[ROUTE_KEY] = "/" + readable_route(route)


def register_django_error_hook() -> None:
    """Hand the exceptions Django answers with a 500 to the request record.

    Connects once to Django's `got_request_exception` signal, sent for every request
    Django serves; requests that no asgi_observe layer saw are left alone.

    Since 0.1.0
    """
    from django.core.signals import got_request_exception

    got_request_exception.connect(_hand_over, weak=False, dispatch_uid=_DISPATCH_UID)


def _hand_over(sender: Any, request: Any = None, **extra: Any) -> None:
    scope = getattr(request, "scope", None)
    record = record_of(scope) if isinstance(scope, dict) else None
    if record is not None:
        # Django sends the signal inside its `except` block (asgiref re-raises the
        # exception in the worker thread it runs that block in), so it is current here.
        record.exception = sys.exc_info()[1]
