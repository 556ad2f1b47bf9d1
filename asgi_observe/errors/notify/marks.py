"""The mark an exception gets once notified, so no other path notifies it again."""

from __future__ import annotations

import contextlib

__all__ = ["already_notified", "mark_notified"]

_MAX_CHAIN = 16
_NOTIFIED_MARK = "_asgi_observe_notified"


def mark_notified(exc: BaseException) -> None:
    with contextlib.suppress(Exception):  # an exception class that refuses attributes
        setattr(exc, _NOTIFIED_MARK, True)


def already_notified(exc: BaseException) -> bool:
    """The exception, or one it was raised from (``raise ... from``), was notified already.

    An exception raised while *handling* a notified one is a new error and is notified.
    """
    seen: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if seen is None:
            return False
        if getattr(seen, _NOTIFIED_MARK, False) is True:
            return True
        seen = seen.__cause__
    return False
