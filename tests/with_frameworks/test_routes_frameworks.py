"""resolve_route with real Starlette, FastAPI, Litestar and Quart apps."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from asgi_driver import Recorder, websocket_scope
from fastapi import APIRouter, FastAPI
from litestar import Litestar, asgi, get, post
from litestar import Router as LitestarRouter
from litestar.params import FromPath
from quart import Blueprint, Quart
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Host, Mount, Route, Router, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_observe.frameworks.quart import is_quart_app, register_quart_route_hook
from asgi_observe.frameworks.routes import resolve_route


class RouteProbe:
    """Resolves the route at the final response event and again after the app returned."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str | None, str | None]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        scope = dict(scope)
        at_final: list[str | None] = []

        async def send_wrapper(message: Any) -> None:
            if message["type"] in ("http.response.body", "websocket.close") and not message.get(
                "more_body"
            ):
                at_final.append(resolve_route(scope))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.seen.append((at_final[0] if at_final else None, resolve_route(scope)))


async def routes_of(app: Any, requests: list[tuple[str, str]], **transport: Any) -> list[Any]:
    probe = RouteProbe(app)
    result = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=probe, **transport), base_url="http://testserver"
    ) as client:
        for method, path in requests:
            response = await client.request(method, path)
            at_final, after = probe.seen[-1]
            assert at_final == after, "the route must not change after the response ended"
            result.append((response.status_code, after))
    return result


async def ok(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def echo_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close()


tenant_items = Mount(
    "/tenants/{tenant}",
    routes=[Route("/items/{id:int}", ok), Mount("/teams/{team}", routes=[Route("/leaf", ok)])],
)
sub_app = Starlette(routes=[Route("/deep/{a}", ok)])
starlette_app = Starlette(
    routes=[
        Route("/", ok),
        Route("/users/{name}", ok),
        Route("/only-post", ok, methods=["POST"]),
        tenant_items,
        Mount("/sub", app=sub_app),
        Mount("/v1", app=Router(routes=[Route("/things", ok)])),
        Mount("/latest", app=Router(routes=[Route("/things", ok)])),
        Mount("/raw", app=PlainTextResponse("raw")),
        Host("api.example.com", app=Router(routes=[Route("/host/{h}", ok)])),
        WebSocketRoute("/ws/{room}", echo_ws),
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "status", "expected"),
    [
        ("GET", "/", 200, "/"),
        ("GET", "/users/bob", 200, "/users/{name}"),
        ("GET", "/tenants/acme/items/3", 200, "/tenants/{tenant}/items/{id}"),
        ("GET", "/tenants/acme/teams/red/leaf", 200, "/tenants/{tenant}/teams/{team}/leaf"),
        ("GET", "/sub/deep/1", 200, "/sub/deep/{a}"),
        ("GET", "/v1/things", 200, "/v1/things"),
        ("GET", "/latest/things", 200, "/latest/things"),
        ("GET", "/raw/any/thing", 200, "/raw/{path}"),
        ("GET", "/only-post", 405, "/only-post"),
        ("DELETE", "/users/bob", 405, "/users/{name}"),
        ("GET", "/nope", 404, None),
        ("GET", "/tenants/acme/nope", 404, None),
        ("GET", "/users/bob/", 307, None),
    ],
)
async def test_starlette_templates(method: str, path: str, status: int, expected: str) -> None:
    assert [(status, expected)] == await routes_of(starlette_app, [(method, path)])


async def test_starlette_host_route_has_no_host_in_the_template() -> None:
    probe = RouteProbe(starlette_app)
    transport = httpx.ASGITransport(app=probe)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.example.com") as client:
        assert 200 == (await client.get("/host/9")).status_code
    assert ("/host/{h}", "/host/{h}") == probe.seen[-1]


async def test_starlette_root_path_is_part_of_the_template() -> None:
    result = await routes_of(
        starlette_app, [("GET", "/api/tenants/acme/items/3")], root_path="/api"
    )
    assert [(200, "/api/tenants/{tenant}/items/{id}")] == result


async def test_starlette_websocket_route() -> None:
    probe = RouteProbe(starlette_app)
    recorder = Recorder([{"type": "websocket.connect"}])
    await probe(websocket_scope("/ws/lobby"), recorder.receive, recorder.send)
    assert ["websocket.accept", "websocket.close"] == [m["type"] for m in recorder.sent]
    assert ("/ws/{room}", "/ws/{room}") == probe.seen[-1]


def build_fastapi() -> FastAPI:
    app = FastAPI()

    @app.get("/a/{x}")
    async def a(x: int) -> dict[str, int]:
        return {"x": x}

    v1 = APIRouter(prefix="/v1")

    @v1.get("/things/{tid}")
    async def things(tid: str) -> dict[str, str]:
        return {}

    nested = APIRouter(prefix="/nested")

    @nested.post("/n/{q}")
    async def post_n(q: str) -> dict[str, str]:
        return {}

    v1.include_router(nested)
    app.include_router(v1)
    app.include_router(v1, prefix="/v2")
    sub = FastAPI()

    @sub.get("/s/{y}")
    async def s(y: str) -> dict[str, str]:
        return {}

    app.mount("/subapp/{t}", sub)
    app.mount("/starlette", sub_app)
    # Plain Starlette routes: FastAPI's router publishes only their endpoint.
    app.add_route("/added/{z}", ok)
    app.add_route("/twice/a/{a}", ok)  # one endpoint behind two routes
    app.add_route("/twice/b/{b}", ok)
    app.add_route("/healthz", ok)  # the same endpoint again, no parameters to tell
    app.add_route("/readyz", ok)
    app.mount("/raw", _raw_app)
    plain = APIRouter()
    plain.add_route("/rplain/{q}", ok)
    app.include_router(plain, prefix="/inc")
    sub.add_route("/subplain/{k}", ok)
    return app


async def _raw_app(scope: Any, receive: Any, send: Any) -> None:
    await PlainTextResponse("raw")(scope, receive, send)


@pytest.mark.parametrize(
    ("method", "path", "status", "expected"),
    [
        ("GET", "/a/1", 200, "/a/{x}"),
        ("GET", "/a/not-an-int", 422, "/a/{x}"),
        ("GET", "/v1/things/7", 200, "/v1/things/{tid}"),
        ("GET", "/v2/v1/things/7", 200, "/v2/v1/things/{tid}"),
        ("POST", "/v1/nested/n/3", 200, "/v1/nested/n/{q}"),
        ("POST", "/v2/v1/nested/n/3", 200, "/v2/v1/nested/n/{q}"),
        ("GET", "/v1/nested/n/3", 405, "/v1/nested/n/{q}"),
        ("GET", "/subapp/t1/s/9", 200, "/subapp/{t}/s/{y}"),
        ("GET", "/starlette/deep/4", 200, "/starlette/deep/{a}"),
        ("GET", "/nope", 404, None),
        ("GET", "/subapp/t1/nope", 404, None),
        ("GET", "/docs", 200, "/docs"),
        ("GET", "/openapi.json", 200, "/openapi.json"),
        ("GET", "/docs/oauth2-redirect", 200, "/docs/oauth2-redirect"),
        ("GET", "/redoc", 200, "/redoc"),
        ("GET", "/added/3", 200, "/added/{z}"),
        ("POST", "/added/3", 405, "/added/{z}"),
        ("GET", "/twice/a/1", 200, "/twice/a/{a}"),
        ("GET", "/twice/b/2", 200, "/twice/b/{b}"),
        ("GET", "/healthz", 200, "/healthz"),
        ("GET", "/readyz", 200, "/readyz"),
        ("POST", "/readyz", 405, "/readyz"),
        ("GET", "/raw/x/y", 200, "/raw/{path}"),
        ("GET", "/inc/rplain/5", 200, "/inc/rplain/{q}"),
        ("GET", "/subapp/t1/subplain/4", 200, "/subapp/{t}/subplain/{k}"),
    ],
)
async def test_fastapi_templates(method: str, path: str, status: int, expected: str) -> None:
    assert [(status, expected)] == await routes_of(build_fastapi(), [(method, path)])


async def test_fastapi_constructor_routes_and_websockets() -> None:
    app = FastAPI(routes=[Route("/plain/{x}", ok), WebSocketRoute("/ws/{room}", echo_ws)])

    @app.websocket("/apiws/{n}")
    async def api_ws(websocket: WebSocket, n: int) -> None:
        await websocket.accept()
        await websocket.close()

    assert [(200, "/plain/{x}")] == await routes_of(app, [("GET", "/plain/1")])
    for path, expected in (("/ws/lobby", "/ws/{room}"), ("/apiws/3", "/apiws/{n}")):
        probe = RouteProbe(app)
        recorder = Recorder([{"type": "websocket.connect"}])
        await probe(websocket_scope(path), recorder.receive, recorder.send)
        assert (expected, expected) == probe.seen[-1]


async def test_fastapi_included_websocket_host_and_static_files(tmp_path: Any) -> None:
    from starlette.staticfiles import StaticFiles

    app = FastAPI()
    router = APIRouter(prefix="/r")

    @router.websocket("/ws/{n}")
    async def ws(websocket: WebSocket, n: int) -> None:
        await websocket.accept()
        await websocket.close()

    app.include_router(router, prefix="/inc")
    by_host = FastAPI()
    by_host.add_route("/h/{x}", ok)
    app.host("api.example.com", by_host)
    (tmp_path / "a.css").write_text("a{}")
    app.mount("/static", StaticFiles(directory=tmp_path))

    probe = RouteProbe(app)
    recorder = Recorder([{"type": "websocket.connect"}])
    await probe(websocket_scope("/inc/r/ws/3"), recorder.receive, recorder.send)
    assert ("/inc/r/ws/{n}", "/inc/r/ws/{n}") == probe.seen[-1]
    assert [(200, "/static/{path}")] == await routes_of(app, [("GET", "/static/a.css")])
    transport = httpx.ASGITransport(app=RouteProbe(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.example.com") as c:
        assert 200 == (await c.get("/h/1")).status_code
    assert "/h/{x}" == transport.app.seen[-1][1]  # type: ignore[attr-defined]


async def test_fastapi_routes_added_after_the_first_request_are_found() -> None:
    app = FastAPI()
    app.add_route("/first", ok)
    assert [(200, "/first")] == await routes_of(app, [("GET", "/first")])
    app.add_route("/later/{n}", ok)
    assert [(200, "/later/{n}")] == await routes_of(app, [("GET", "/later/1")])


async def test_fastapi_mounted_in_starlette_keeps_its_plain_routes() -> None:
    outer = Starlette(routes=[Mount("/fa", app=build_fastapi())])
    result = await routes_of(outer, [("GET", "/fa/docs"), ("GET", "/fa/added/1")])
    assert [(200, "/fa/docs"), (200, "/fa/added/{z}")] == result


def build_litestar() -> Litestar:
    @get("/items/{item_id:int}")
    async def item(item_id: FromPath[int]) -> str:
        return "x"

    @post("/only-post")
    async def only_post() -> str:
        return "x"

    @asgi("/static", is_mount=True, copy_scope=True)
    async def static(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"s"})

    versioned = LitestarRouter(path="/api/{version:str}", route_handlers=[item, static])
    return Litestar(route_handlers=[item, only_post, static, versioned])


@pytest.mark.parametrize(
    ("method", "path", "status", "expected"),
    [
        ("GET", "/items/3", 200, "/items/{item_id}"),
        ("GET", "/api/v1/items/4", 200, "/api/{version}/items/{item_id}"),
        ("GET", "/static/css/a.css", 200, "/static/{path}"),
        ("GET", "/items/not-an-int", 404, None),
        ("GET", "/nope", 404, None),
        # Litestar raises before publishing a template when the method does not match.
        ("GET", "/only-post", 405, None),
    ],
)
async def test_litestar_templates(method: str, path: str, status: int, expected: str) -> None:
    assert [(status, expected)] == await routes_of(build_litestar(), [(method, path)])


async def test_litestar_root_path_is_part_of_the_template() -> None:
    result = await routes_of(build_litestar(), [("GET", "/svc/items/3")], root_path="/svc")
    assert [(200, "/svc/items/{item_id}")] == result


def build_quart() -> Quart:
    app = Quart(__name__)

    @app.route("/q/<int:n>")
    async def q(n: int) -> str:
        return "q"

    @app.route("/conv/<int(min=1):n>/<path:rest>")
    async def conv(n: int, rest: str) -> str:
        return "c"

    blueprint = Blueprint("bp", __name__, url_prefix="/bp/<org>")

    @blueprint.route("/members/<member>")
    async def member(org: str, member: str) -> str:
        return "m"

    @app.before_request
    async def short_circuit() -> None:
        return None

    app.register_blueprint(blueprint)
    register_quart_route_hook(app)
    register_quart_route_hook(app)  # idempotent
    return app


@pytest.mark.parametrize(
    ("method", "path", "status", "expected"),
    [
        # Quart's converter syntax is published in the brace form every framework uses.
        ("GET", "/q/1", 200, "/q/{n}"),
        ("GET", "/bp/acme/members/ann", 200, "/bp/{org}/members/{member}"),
        ("GET", "/conv/3/a/b/c", 200, "/conv/{n}/{rest}"),
        ("GET", "/q/x", 404, None),
        ("GET", "/nope", 404, None),
        # Werkzeug's MethodNotAllowed carries no rule.
        ("POST", "/q/1", 405, None),
    ],
)
async def test_quart_templates(method: str, path: str, status: int, expected: str) -> None:
    assert [(status, expected)] == await routes_of(build_quart(), [(method, path)])


def test_quart_hook_is_registered_once() -> None:
    app = build_quart()
    assert 1 == len(app.url_value_preprocessors[None])


async def test_quart_without_hook_publishes_nothing() -> None:
    app = Quart(__name__)

    @app.route("/q/<int:n>")
    async def q(n: int) -> str:
        return "q"

    assert [(200, None)] == await routes_of(app, [("GET", "/q/1")])


async def test_litestar_mounted_in_starlette_joins_both_templates() -> None:
    outer = Starlette(routes=[Mount("/legacy/{v}", app=build_litestar())])
    result = await routes_of(outer, [("GET", "/legacy/7/items/3")])
    assert [(200, "/legacy/{v}/items/{item_id}")] == result


def test_is_quart_app() -> None:
    assert (True, False, False) == (
        is_quart_app(build_quart()),
        is_quart_app(starlette_app),
        is_quart_app(RouteProbe(build_quart())),
    )
