"""The ids of the request an exception escaped from, for the server's own error line.

uvicorn and hypercorn log ``Exception in ASGI application`` after the app's call has
returned, when the request's context (its id, its span) has already been reset. The
outermost request layer therefore writes the ids on the exception as it passes, and log
correlation reads them back from ``exc_info`` when no request is current.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["RequestIds", "exception_ids", "tag_exception"]

_ATTRIBUTE = "__asgi_observe_request__"


class RequestIds(NamedTuple):
    request_id: str | None
    trace_id: str | None
    span_id: str | None
    sampled: bool
    route: str | None


def tag_exception(exc: BaseException, ids: RequestIds) -> None:
    """Remember `ids` on `exc`; the innermost request that saw it keeps its ids."""
    try:
        if _ATTRIBUTE not in vars(exc):
            setattr(exc, _ATTRIBUTE, ids)
    except Exception:  # an exception type without a __dict__, or a read-only one
        pass


def exception_ids(exc_info: Any) -> RequestIds | None:
    """The ids `tag_exception` left on the exception of `exc_info`, if any.

    `exc_info` is what logging keeps on a record: a (type, value, traceback) tuple, an
    exception, or anything else (then None).
    """
    exc = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else exc_info
    if not isinstance(exc, BaseException):
        return None
    try:
        ids = vars(exc).get(_ATTRIBUTE)
    except TypeError:
        return None
    return ids if isinstance(ids, RequestIds) else None
