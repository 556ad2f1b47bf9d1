"""Route templates, read from what the framework left in the scope after it routed.

Nothing here matches a path against a router again: every answer comes from an object
the framework published (`scope["route"]`, `scope["path_template"]`, the key a hook
wrote). Starlette leaves only the innermost route of a mount chain in the scope, with a
path relative to its mount, so the mount prefixes come from one walk of the route tree
per router, cached by object identity (see docs/metrics.md, "Route templates").
"""

from __future__ import annotations

import re
from typing import Any

from asgi_observe._core.types import Scope

ROUTE_KEY = "asgi_observe.route"
"""Scope key any app or hook may set to the route template it matched (Quart hook)."""

_MOUNT_SUFFIX = "/{path}"
_MAX_WALK_DEPTH = 32
_MAX_UNWRAP = 16
_MAX_CACHED_ROUTERS = 64
_PARAM = re.compile(r"\\\{[^/]*?\\\}")
_PARAM_NAME = re.compile(r"\{([^}:/]+)")

# id(router) -> (router, {id(route): (route, prefixes, routes_below)}); the router is
# kept so a reused id is detected. Routers live as long as their app.
_Entry = tuple[Any, tuple[str, ...], bool]
_trees: dict[int, tuple[Any, dict[int, _Entry]]] = {}
# id(route) -> (route, router, template) for a plain Starlette route: not a mount, reached
# through one mount chain only, no FastAPI route context. Its template then depends on
# nothing else in the scope, so later requests skip the tree lookup (see
# docs/performance.md). Bounded like `_trees`: routes live as long as their app.
_MAX_CACHED_ROUTES = 4096
_plain: dict[int, tuple[Any, Any, str]] = {}
# id(router) -> (router, its route count, {id(endpoint): routes with that endpoint}, ids
# of endpoints not in its tree), for FastAPI's routers: they publish a plain route's
# endpoint, not the route.
_EndpointIndex = tuple[Any, int, dict[int, tuple[Any, ...]], set[int]]
_endpoints: dict[int, _EndpointIndex] = {}
# id(endpoint) -> (endpoint, router, its route count, template): `_plain` for them.
_plain_endpoints: dict[int, tuple[Any, Any, int, str]] = {}


def resolve_route(scope: Scope) -> str | None:
    """Return the route template the framework matched for this request, or None.

    Call it after the app ran (or at the final response event). Supports Starlette
    (>= 1.7, mounts included), FastAPI (included routers, mounted sub-apps), Litestar
    (`path_template`), Quart (via `register_quart_route_hook`) and anything that sets
    `scope[ROUTE_KEY]`. The result includes the application root (`root_path`).
    Never raises on what it finds in the scope; None means no route matched.

    Since 0.1.0
    """
    try:
        template = _cached_plain_template(scope)
        if template is None:
            inner = _inner_template(scope)
            outer = _starlette_template(scope, inner)
            template = outer if outer is not None else inner
    except Exception:  # a framework we do not know must never break a request
        return None
    if template is None:
        return None
    root = scope.get("app_root_path", scope.get("root_path", ""))
    return root.rstrip("/") + template if isinstance(root, str) and root else template


def _cached_plain_template(scope: Scope) -> str | None:
    route = scope.get("route")
    if route is None:
        return _cached_endpoint_template(scope)
    if "fastapi" in scope:
        return None
    entry = _plain.get(id(route))
    if entry is None or entry[0] is not route or entry[1] is not scope.get("router"):
        return None
    return entry[2]


def _cached_endpoint_template(scope: Scope) -> str | None:
    # FastAPI's plain routes (no scope["route"]): the same shortcut, keyed by endpoint,
    # valid while the router keeps its number of routes.
    endpoint = scope.get("endpoint")
    entry = _plain_endpoints.get(id(endpoint)) if endpoint is not None else None
    if entry is None or entry[0] is not endpoint or "fastapi" in scope:
        return None
    router = scope.get("router")
    if entry[1] is not router or entry[2] != len(_routes_of(router)):
        return None
    return entry[3]


def _inner_template(scope: Scope) -> str | None:
    explicit = scope.get(ROUTE_KEY)
    if isinstance(explicit, str):
        return explicit
    template = scope.get("path_template")  # Litestar
    if isinstance(template, str) and template:
        return template
    if template == "":
        return _litestar_mount(scope.get("route_handler"))
    return None


def _litestar_mount(handler: Any) -> str | None:
    # Litestar publishes an empty template for `@asgi(..., is_mount=True)` handlers.
    paths = getattr(handler, "paths", None)
    if not getattr(handler, "is_mount", False) or not paths or len(paths) != 1:
        return None
    layers = getattr(handler, "ownership_layers", ())
    prefix = "".join(str(getattr(layer, "path", "") or "").rstrip("/") for layer in layers[:-1])
    return prefix + str(next(iter(paths))).rstrip("/") + _MOUNT_SUFFIX


def _starlette_template(scope: Scope, inner: str | None) -> str | None:
    route = scope.get("route")
    template: Any
    context = _fastapi_route_context(scope)
    if context is not None and (route is None or route is context[0] or _is_mount(route)):
        route, template = context
    else:
        by_endpoint = route is None
        if by_endpoint or _is_mount(route):
            route = _route_of_endpoint(scope, route)
        template = getattr(route, "path_format", None)
    if route is None or not isinstance(template, str):
        return None
    router = scope.get("router")
    prefix, routes_below, unique = (
        _prefix_of(scope, router, route) if router is not None else ("", False, True)
    )
    if not _is_mount(route):
        if unique and context is None:
            if by_endpoint:
                _remember_endpoint(scope, router, prefix + template)
            else:
                _remember_plain(route, router, prefix + template)
        return prefix + template
    mount = prefix + template.removesuffix(_MOUNT_SUFFIX)
    if inner is not None:  # a mounted app that publishes its own template (Litestar, Quart)
        return mount + inner
    if routes_below:
        return None  # the mounted router matched nothing: a 404 inside the mount
    return mount + _MOUNT_SUFFIX


def _fastapi_route_context(scope: Scope) -> tuple[Any, str] | None:
    # FastAPI >= 0.160 resolves included-router prefixes into an "effective route
    # context"; its path_format is the template within that FastAPI app.
    state = scope.get("fastapi")
    context = state.get("effective_route_context") if isinstance(state, dict) else None
    original = getattr(context, "original_route", None)
    # A plain Starlette route in an included router has an empty path_format of its
    # own; the route FastAPI built for it (starlette_route) holds the prefixed one.
    template = getattr(getattr(context, "starlette_route", None), "path_format", None)
    if not isinstance(template, str) or not template:
        template = getattr(context, "path_format", None)
    if original is None or not isinstance(template, str) or not template:
        return None
    return original, template


def _route_of_endpoint(scope: Scope, route: Any) -> Any:
    """The route whose endpoint the router left in the scope, when it set no `route`.

    FastAPI's router sets `scope["route"]` only for its own APIRoutes; for a plain
    Starlette route, mount or websocket route (`/docs`, `/openapi.json`, `add_route`,
    `routes=[Route(...)]`, `mount`) it leaves only `scope["endpoint"]`, the object the
    route matched with. That object is looked up in the router's route tree (walked
    once, see `_tree_of`); a mount whose app is the endpoint is its own answer.
    """
    endpoint = scope.get("endpoint")
    router = scope.get("router")
    if endpoint is None or router is None or (route is not None and route.app is endpoint):
        return route
    candidates = _routes_with_endpoint(router, endpoint)
    if len(candidates) > 1:
        candidates = _narrowed(scope, router, candidates)
    return candidates[0] if len(candidates) == 1 else route


def _narrowed(scope: Scope, router: Any, candidates: tuple[Any, ...]) -> tuple[Any, ...]:
    # One endpoint behind several routes (`add_route("/a", f)`, `add_route("/b", f)`):
    # the candidates' own patterns decide, as the router did (a full match before the
    # path-only match of a 405); then the mounts the concrete root_path went through
    # and the parameters matched; then the router's order.
    path = _route_path(scope)
    method = scope.get("method")
    full: list[Any] = []
    partial: list[Any] = []
    for candidate in candidates:
        pattern = getattr(candidate, "path_regex", None)
        if pattern is not None and pattern.match(path):
            methods = getattr(candidate, "methods", None)
            (full if not methods or method in methods else partial).append(candidate)
    matched = full or partial or list(candidates)  # a mount's pattern saw the outer path
    if len(matched) == 1:
        return (matched[0],)
    names = set(scope.get("path_params") or ())
    root = _mounted_root(scope)
    tree = _tree_of(router)
    fitting = [
        candidate
        for candidate in matched
        if any(
            _prefix_matches(prefix, root)
            and _parameters_of(candidate) | set(_PARAM_NAME.findall(prefix)) == names
            for prefix in tree.get(id(candidate), (None, ("",)))[1]
        )
    ]
    return (fitting[0],) if fitting else ()


def _route_path(scope: Scope) -> str:
    # The path relative to the innermost mount, as Starlette's get_route_path() has it.
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def _endpoint_of(route: Any) -> Any:
    # What Starlette puts in scope["endpoint"]: a route's endpoint, a mount's app.
    return route.app if _is_mount(route) else getattr(route, "endpoint", None)


def _parameters_of(route: Any) -> set[str]:
    names = set(getattr(route, "param_convertors", None) or ())
    return names - {"path"} if _is_mount(route) else names


def _routes_with_endpoint(router: Any, endpoint: Any) -> tuple[Any, ...]:
    cached = _endpoints.get(id(router))
    count = len(_routes_of(router))  # a route added to this router since the last walk
    if cached is None or cached[0] is not router or cached[1] != count:
        cached = _index_endpoints(router, count)
    found = cached[2].get(id(endpoint))
    if found is None and id(endpoint) not in cached[3]:
        # Not in the last walk: a route added below a mount since? Walk once more, and
        # remember the endpoints that are not there either.
        cached = _index_endpoints(router, count)
        found = cached[2].get(id(endpoint))
        if found is None:
            if len(cached[3]) >= _MAX_CACHED_ROUTES:
                cached[3].clear()
            cached[3].add(id(endpoint))
    if found is not None and len(found) == 1:  # the usual case: one route per endpoint
        return found if _endpoint_of(found[0]) is endpoint else ()
    return tuple(route for route in found or () if _endpoint_of(route) is endpoint)


def _index_endpoints(router: Any, count: int) -> _EndpointIndex:
    index: dict[int, tuple[Any, ...]] = {}
    for route, _prefixes, _below in _tree_of(router, rebuild=True).values():
        endpoint = _endpoint_of(route)
        if endpoint is not None:
            index[id(endpoint)] = (*index.get(id(endpoint), ()), route)
    if len(_endpoints) >= _MAX_CACHED_ROUTERS:
        _endpoints.clear()
    entry = _endpoints[id(router)] = (router, count, index, set())
    return entry


def _is_mount(route: Any) -> bool:
    template = getattr(route, "path_format", None)
    return isinstance(template, str) and template.endswith(_MOUNT_SUFFIX) and hasattr(route, "app")


def _remember_endpoint(scope: Scope, router: Any, template: str) -> None:
    endpoint = scope.get("endpoint")
    entry = _endpoints.get(id(router))
    if entry is None or len(entry[2].get(id(endpoint), ())) != 1:
        return  # one endpoint behind several routes: the template depends on the path
    if len(_plain_endpoints) >= _MAX_CACHED_ROUTES:
        _plain_endpoints.clear()
    _plain_endpoints[id(endpoint)] = (endpoint, router, entry[1], template)


def _remember_plain(route: Any, router: Any, template: str) -> None:
    if len(_plain) >= _MAX_CACHED_ROUTES:
        _plain.clear()
    _plain[id(route)] = (route, router, template)


def _prefix_of(scope: Scope, router: Any, route: Any) -> tuple[str, bool, bool]:
    """(mount prefix, routes below, whether the prefix was the only one possible)."""
    tree = _tree_of(router)
    entry = tree.get(id(route))
    if entry is None or entry[0] is not route:
        tree = _tree_of(router, rebuild=True)  # routes were added after the first walk
        entry = tree.get(id(route))
        if entry is None or entry[0] is not route:
            tree[id(route)] = entry = (route, ("",), False)
    _, prefixes, routes_below = entry
    if len(prefixes) == 1:
        return prefixes[0], routes_below, True
    return _disambiguate(scope, prefixes), routes_below, False


def _disambiguate(scope: Scope, prefixes: tuple[str, ...]) -> str:
    # The same route object reached through two mounts: the concrete root_path the
    # mounts left behind tells which one ran. Only prefixes are compared, never routes.
    root = _mounted_root(scope)
    for prefix in prefixes:
        if _prefix_matches(prefix, root):
            return prefix
    return prefixes[0]


def _mounted_root(scope: Scope) -> str:
    return str(scope.get("root_path", ""))[len(str(scope.get("app_root_path", ""))) :]


def _prefix_matches(prefix: str, root: str) -> bool:
    if "{" not in prefix:
        return prefix == root
    return re.fullmatch(_PARAM.sub("[^/]+", re.escape(prefix)), root) is not None


def _tree_of(router: Any, *, rebuild: bool = False) -> dict[int, _Entry]:
    cached = _trees.get(id(router))
    if cached is not None and cached[0] is router and not rebuild:
        return cached[1]
    tree: dict[int, _Entry] = {}
    _walk(_routes_of(router), "", "", tree, 0)
    if len(_trees) >= _MAX_CACHED_ROUTERS:
        _trees.clear()
    _trees[id(router)] = (router, tree)
    return tree


def _walk(
    routes: list[Any], mounts: str, included: str, tree: dict[int, _Entry], depth: int
) -> None:
    if depth > _MAX_WALK_DEPTH:
        return
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:  # FastAPI include_router(): prefix applies to mounts below
            extra = str(getattr(getattr(route, "include_context", None), "prefix", "") or "")
            _walk(_routes_of(original), mounts, included + extra, tree, depth + 1)
            continue
        below = _routes_of(getattr(route, "app", None)) if hasattr(route, "app") else []
        _note(tree, route, mounts, bool(below))
        if _is_mount(route):
            path = included + route.path_format.removesuffix(_MOUNT_SUFFIX)
            _walk(below, mounts + path, "", tree, depth + 1)
        elif hasattr(route, "host"):  # Host: no path of its own
            _walk(below, mounts, included, tree, depth + 1)


def _note(tree: dict[int, _Entry], route: Any, prefix: str, routes_below: bool) -> None:
    entry = tree.get(id(route))
    prefixes = (prefix,) if entry is None else (*entry[1], prefix)
    tree[id(route)] = (route, tuple(dict.fromkeys(prefixes)), routes_below)


def _routes_of(app: Any) -> list[Any]:
    # Follow `.app` through middleware wrappers until something exposes `.routes`.
    for _ in range(_MAX_UNWRAP):
        if app is None:
            return []
        routes = getattr(app, "routes", None)
        if isinstance(routes, list):
            return routes
        app = getattr(app, "app", None)
    return []
