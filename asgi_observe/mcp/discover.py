"""Find the MCP endpoints of an app once, when observe() wraps it (no per-request cost).

Both SDKs serve Streamable HTTP from a Starlette route whose endpoint is a
``StreamableHTTPASGIApp`` holding the ``session_manager``; such routes are recognised by
those names, through Starlette/FastAPI routers and mounts, without importing either SDK.
"""

from __future__ import annotations

from typing import Any

__all__ = ["find_mcp_paths"]

_MAX_DEPTH = 8


def find_mcp_paths(app: Any) -> list[str]:
    """The full paths (mount prefixes included) of the MCP endpoints found in `app`."""
    found: list[str] = []
    try:
        _walk(app, "", 0, found, set())
    except Exception:  # an app we cannot read has no endpoints we know of
        return []
    return found


def _is_streamable_http(endpoint: Any) -> bool:
    return hasattr(endpoint, "session_manager") and "StreamableHTTP" in type(endpoint).__name__


def _routes_of(app: Any) -> list[Any] | None:
    routes = getattr(app, "routes", None)
    if routes is None:
        routes = getattr(getattr(app, "router", None), "routes", None)
    return list(routes) if isinstance(routes, (list, tuple)) else None


def _walk(app: Any, prefix: str, depth: int, found: list[str], seen: set[int]) -> None:
    if depth > _MAX_DEPTH or id(app) in seen:
        return
    seen.add(id(app))
    routes = _routes_of(app)
    if routes is None:
        inner = getattr(app, "app", None)  # a middleware around the app
        if inner is not None and inner is not app:
            _walk(inner, prefix, depth + 1, found, seen)
        return
    for route in routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str) or "{" in path:
            continue
        endpoint = getattr(route, "endpoint", None)
        target = getattr(route, "app", None)
        if _is_streamable_http(endpoint) or _is_streamable_http(target):
            found.append(prefix + path)
        elif target is not None and _routes_of(target) is not None:
            _walk(target, prefix + path.rstrip("/"), depth + 1, found, seen)
