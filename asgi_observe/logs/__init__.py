"""Request ids and log correlation (stdlib, JSON, structlog)."""

from __future__ import annotations

from asgi_observe.logs.correlation import (
    ACCESS_LOGGER_NAME,
    JsonFormatter,
    RequestContextFilter,
    add_request_context,
    install_log_record_factory,
    uninstall_log_record_factory,
)
from asgi_observe.logs.request_id import (
    MAX_REQUEST_ID_LENGTH,
    RequestIdMiddleware,
    generate_request_id,
    get_request_id,
    is_valid_request_id,
)

__all__ = [
    "ACCESS_LOGGER_NAME",
    "MAX_REQUEST_ID_LENGTH",
    "JsonFormatter",
    "RequestContextFilter",
    "RequestIdMiddleware",
    "add_request_context",
    "generate_request_id",
    "get_request_id",
    "install_log_record_factory",
    "is_valid_request_id",
    "uninstall_log_record_factory",
]
