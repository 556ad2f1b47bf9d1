"""Request ids and log correlation (stdlib, JSON, structlog)."""

from __future__ import annotations

from asgi_observe.logs.request_id import RequestIdMiddleware, get_request_id

__all__ = ["RequestIdMiddleware", "get_request_id"]
