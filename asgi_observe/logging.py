"""The old path of `asgi_observe.logs.correlation`, kept so documented imports keep working."""

from __future__ import annotations

from asgi_observe.logs.correlation import (
    ACCESS_LOGGER_NAME,
    JsonFormatter,
    RequestContextFilter,
    add_request_context,
    install_log_record_factory,
    uninstall_log_record_factory,
)

__all__ = [
    "ACCESS_LOGGER_NAME",
    "JsonFormatter",
    "RequestContextFilter",
    "add_request_context",
    "install_log_record_factory",
    "uninstall_log_record_factory",
]
