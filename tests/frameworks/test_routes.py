"""resolve_route on hand-built scopes: what each framework leaves behind, and junk."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgi_observe.frameworks.routes import ROUTE_KEY, resolve_route


def route(path_format: str, **extra: Any) -> SimpleNamespace:
    return SimpleNamespace(path_format=path_format, app=object(), **extra)


def router(*routes: Any) -> SimpleNamespace:
    return SimpleNamespace(routes=list(routes))


def mount(path: str, *routes: Any, app: Any = None) -> SimpleNamespace:
    inner = app if app is not None else router(*routes)
    return SimpleNamespace(path_format=path + "/{path}", app=inner)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        pytest.param({}, None, id="nothing-published"),
        pytest.param({ROUTE_KEY: "/q/<int:n>"}, "/q/<int:n>", id="explicit-key"),
        pytest.param({"path_template": "/items/{id}"}, "/items/{id}", id="litestar"),
        pytest.param({"path_template": "/i/{id}", "root_path": "/api"}, "/api/i/{id}", id="root"),
        pytest.param({"path_template": "/i", "root_path": "/api/"}, "/api/i", id="root-slash"),
        pytest.param({ROUTE_KEY: "/a", "path_template": "/b"}, "/a", id="explicit-wins"),
        pytest.param({"route": route("/users/{name}")}, "/users/{name}", id="starlette-no-router"),
        pytest.param({"route": object()}, None, id="route-without-template"),
        pytest.param({"route": route("/x"), "router": 42}, "/x", id="router-without-routes"),
        pytest.param({"path_template": ""}, None, id="litestar-empty-template"),
    ],
)
def test_resolves_what_the_scope_publishes(scope: dict[str, Any], expected: str | None) -> None:
    assert expected == resolve_route(scope)


def test_mount_prefix_comes_from_the_route_tree_not_the_concrete_path() -> None:
    """The inner route of a mount gets the mount's template, parameters included."""
    leaf = route("/items/{id}")
    top = router(route("/"), mount("/tenants/{tenant}", leaf))
    scope = {"route": leaf, "router": top, "root_path": "/tenants/acme", "app_root_path": ""}
    assert "/tenants/{tenant}/items/{id}" == resolve_route(scope)


def test_same_route_mounted_twice_is_told_apart_by_the_root_path() -> None:
    leaf = route("/things")
    api = router(leaf)
    top = router(mount("/v1", app=api), mount("/orgs/{org}", app=api))
    base = {"route": leaf, "router": top, "app_root_path": ""}
    assert "/v1/things" == resolve_route({**base, "root_path": "/v1"})
    assert "/orgs/{org}/things" == resolve_route({**base, "root_path": "/orgs/acme"})


def test_route_added_after_the_first_walk_is_found() -> None:
    leaf = route("/late")
    inner = router()
    top = router(mount("/m", app=inner))
    first = route("/first")
    inner.routes.append(first)
    assert "/m/first" == resolve_route({"route": first, "router": top, "app_root_path": ""})
    inner.routes.append(leaf)
    assert "/m/late" == resolve_route({"route": leaf, "router": top, "app_root_path": ""})


def test_404_inside_a_mounted_router_is_unmatched() -> None:
    sub = mount("/sub", route("/a"))
    assert None is resolve_route({"route": sub, "router": router(sub)})


def test_mount_of_an_opaque_app_is_its_prefix_and_path_placeholder() -> None:
    static = mount("/static", app=object())
    assert "/static/{path}" == resolve_route({"route": static, "router": router(static)})


def test_opaque_mount_joins_the_template_the_mounted_app_published() -> None:
    inner = mount("/legacy/{v}", app=object())
    scope = {"route": inner, "router": router(inner), "path_template": "/items/{id}"}
    assert "/legacy/{v}/items/{id}" == resolve_route(scope)


def test_mount_wrapped_in_middleware_is_walked_through_app_attributes() -> None:
    leaf = route("/leaf")
    wrapped = SimpleNamespace(app=SimpleNamespace(app=router(leaf)))
    top = router(mount("/w", app=wrapped))
    assert "/w/leaf" == resolve_route({"route": leaf, "router": top, "app_root_path": ""})


def test_fastapi_effective_route_context_gives_the_included_prefix() -> None:
    leaf = route("/nested/{q}")
    context = SimpleNamespace(original_route=leaf, path_format="/v1/nested/{q}")
    scope = {"route": leaf, "router": router(leaf), "fastapi": {"effective_route_context": context}}
    assert "/v1/nested/{q}" == resolve_route(scope)


def test_a_remembered_route_still_follows_its_router_root_path_and_fastapi_context() -> None:
    """Plain routes are remembered per route object; nothing else is served from memory."""
    leaf = route("/leaf/{id}")
    plain, mounted = router(leaf), router(mount("/m", leaf))
    assert "/leaf/{id}" == resolve_route({"route": leaf, "router": plain})
    assert "/leaf/{id}" == resolve_route({"route": leaf, "router": plain})
    assert "/api/leaf/{id}" == resolve_route({"route": leaf, "router": plain, "root_path": "/api"})
    assert "/m/leaf/{id}" == resolve_route({"route": leaf, "router": mounted, "app_root_path": ""})
    context = SimpleNamespace(original_route=leaf, path_format="/v2/leaf/{id}")
    fastapi = {"route": leaf, "router": plain, "fastapi": {"effective_route_context": context}}
    assert "/v2/leaf/{id}" == resolve_route(fastapi)


def test_root_path_comes_from_app_root_path_after_mounts() -> None:
    scope = {"path_template": "/x", "root_path": "/api/tenants/acme", "app_root_path": "/api"}
    assert "/api/x" == resolve_route(scope)


class Exploding:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(name)


def test_a_hostile_route_object_yields_none() -> None:
    assert None is resolve_route({"route": Exploding(), "router": Exploding()})


junk = st.one_of(st.none(), st.integers(), st.text(), st.binary(), st.lists(st.integers()))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            ["route", "router", "path_template", "root_path", "app_root_path", "fastapi", ROUTE_KEY]
        ),
        junk,
    )
)
def test_never_raises_on_junk(scope: dict[str, Any]) -> None:
    result = resolve_route(scope)
    assert result is None or isinstance(result, str)
