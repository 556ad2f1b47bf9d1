"""HTTP facts shared by the layers: the known request methods."""

from __future__ import annotations

from collections.abc import Iterable

# https://opentelemetry.io/docs/specs/semconv/http/http-spans/ (http.request.method):
# RFC 9110 methods plus PATCH (RFC 5789) and QUERY; anything else is reported as _OTHER
# so a client cannot create unbounded attribute or label values.
DEFAULT_KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)
OTHER_METHOD = "_OTHER"


def known_methods(methods: Iterable[str] | None = None) -> frozenset[str]:
    """Validate and upper-case a configured set of methods (None: the default set)."""
    if methods is None:
        return DEFAULT_KNOWN_METHODS
    if isinstance(methods, str):
        raise TypeError("known_methods must be an iterable of method names, not a string")
    result = frozenset(method.strip().upper() for method in methods)
    if not all(result):
        raise ValueError("known_methods must not contain empty names")
    return result


def path_set(option: str, paths: Iterable[str]) -> frozenset[str]:
    """Validate configured paths: an iterable of strings starting with '/'."""
    if isinstance(paths, str):
        raise TypeError(f"{option} must be an iterable of paths, not a string")
    result = frozenset(paths)
    for path in result:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"{option} entries must be strings starting with '/': {path!r}")
    return result
