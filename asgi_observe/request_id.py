"""The old path of `asgi_observe.logs.request_id`, kept so documented imports keep working."""

from __future__ import annotations

from asgi_observe.logs.request_id import (
    MAX_REQUEST_ID_LENGTH,
    RequestIdMiddleware,
    generate_request_id,
    get_request_id,
    is_valid_request_id,
)

__all__ = [
    "MAX_REQUEST_ID_LENGTH",
    "RequestIdMiddleware",
    "generate_request_id",
    "get_request_id",
    "is_valid_request_id",
]
