"""The fingerprint that groups repeats of one error: type, innermost in-app frame, route.

Pure and cheap: it runs on the request path for every failing request, before deduplication
decides whether anything else is computed. The viewer groups errors by the same value.
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from functools import lru_cache
from types import FrameType, TracebackType

__all__ = ["error_type_name", "exception_fingerprint", "fingerprint", "in_app_frame", "is_in_app"]

_LIBRARY_MARKERS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
_OWN_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_MAX_FRAMES = 256  # deeper tracebacks are walked this far only


@lru_cache(maxsize=4096)  # pure: a storm of one error hashes it once
def fingerprint(error_type: str, frame: str | None, route: str | None) -> str:
    """A short stable hex id for (error type, innermost in-app frame, route).

    `frame` is ``"module:qualified.function"`` (no line number, so an edit elsewhere in the
    file keeps the group); `route` is the method and route template, e.g.
    ``"GET /items/{id}"``. Since 0.1.0.
    """
    text = "\x1f".join((error_type, frame or "", route or ""))
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def exception_fingerprint(exc: BaseException, route: str | None) -> str:
    """The `fingerprint` of an exception raised while serving `route`. Since 0.1.0."""
    frame = in_app_frame(exc.__traceback__)
    return fingerprint(error_type_name(type(exc)), frame_name(frame) if frame else None, route)


def error_type_name(cls: type[BaseException]) -> str:
    """``module.QualName``, without the module for builtins (``ValueError``)."""
    module = getattr(cls, "__module__", None)
    name = getattr(cls, "__qualname__", cls.__name__)
    return name if module in (None, "builtins", "__main__") else f"{module}.{name}"


def frame_name(frame: FrameType) -> str:
    code = frame.f_code
    module = frame.f_globals.get("__name__")
    qualname = getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+
    return f"{module if isinstance(module, str) else code.co_filename}:{qualname}"


def in_app_frame(tb: TracebackType | None) -> FrameType | None:
    """The innermost frame of the application's own code; the innermost frame if none is."""
    innermost = found = None
    for _ in range(_MAX_FRAMES):
        if tb is None:
            break
        innermost = tb.tb_frame
        if is_in_app(innermost.f_code.co_filename):
            found = innermost
        tb = tb.tb_next
    return found or innermost


def is_own_code(filename: str) -> bool:
    """True for asgi_observe's own modules (its middleware frames are left out of messages)."""
    return filename.startswith(_OWN_PACKAGE + os.sep)


def is_in_app(filename: str) -> bool:
    """False for the standard library, installed packages, asgi_observe and generated code."""
    return _is_in_app(filename)


@lru_cache(maxsize=1024)
def _is_in_app(filename: str) -> bool:
    if not filename or filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    if any(marker in path for marker in _LIBRARY_MARKERS):
        return False
    return not path.startswith(_library_roots())


@lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths.get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.add(_OWN_PACKAGE + os.sep)
    # A virtualenv's lib dir lives under sys.prefix, the stdlib under sys.base_prefix.
    return tuple(sorted(os.path.join(root, "") for root in roots if root)) or (sys.prefix,)
