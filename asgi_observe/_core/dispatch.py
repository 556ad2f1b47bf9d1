"""In-band endpoints and exclusions for observe(): chosen by path before any layer runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from asgi_observe._core.types import ASGIApp, Receive, Scope, Send


class PathDispatcher:
    """Send a few paths to their own apps, past every observability layer.

    `endpoints` maps an exact path to an app (the metrics app); `mounts` maps a path
    prefix to an app that sees the prefix in `root_path`, as Starlette's `Mount` does
    (the health probes); `bypass` paths and prefixes go straight to the unwrapped app,
    so they are neither traced nor measured. Everything else goes to `observed`.
    """

    def __init__(
        self,
        observed: ASGIApp,
        *,
        bare: ASGIApp,
        endpoints: Mapping[str, ASGIApp] | None = None,
        mounts: Mapping[str, ASGIApp] | None = None,
        bypass_paths: Iterable[str] = (),
        bypass_prefixes: Iterable[str] = (),
    ) -> None:
        self.app = observed
        self._bare = bare
        self._endpoints = dict(endpoints or {})
        self._mounts = tuple((prefix.rstrip("/"), app) for prefix, app in (mounts or {}).items())
        self._bypass_paths = frozenset(bypass_paths)
        self._bypass_prefixes = tuple(bypass_prefixes)
        # Most requests are for none of these: one set lookup and one startswith say so.
        self._exact = frozenset(self._endpoints).union(
            self._bypass_paths, (prefix for prefix, _ in self._mounts)
        )
        self._prefixes = (*(prefix + "/" for prefix, _ in self._mounts), *self._bypass_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" and scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            rest = path[len(root_path) :]  # ASGI paths include the server's root_path
            if not rest or rest[0] == "/":  # "/m" is the root of "/m/x", not of "/metrics"
                path = rest
        if path not in self._exact and not (self._prefixes and path.startswith(self._prefixes)):
            await self.app(scope, receive, send)
            return
        endpoint = self._endpoints.get(path)
        if endpoint is not None:
            await endpoint(scope, receive, send)
            return
        for prefix, mounted in self._mounts:
            if path == prefix or path.startswith(prefix + "/"):
                await mounted({**scope, "root_path": root_path + prefix}, receive, send)
                return
        if path in self._bypass_paths or (
            self._bypass_prefixes and path.startswith(self._bypass_prefixes)
        ):
            await self._bare(scope, receive, send)
            return
        await self.app(scope, receive, send)
