"""health_app(): Kubernetes-style liveness, readiness and startup probes as an ASGI app."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from asgi_observe._core.types import Receive, Scope, Send
from asgi_observe.scrub.urls import redact_userinfo

__all__ = ["Check", "HealthApp", "health_app"]

CheckFunction = Callable[[], Awaitable[object]]

_MAX_MESSAGE = 200
_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
# Checks abandoned after their timeout: kept referenced until they end, so the loop
# does not destroy a task that ignores cancellation while it is still pending.
_abandoned: set[asyncio.Task[object]] = set()


class Check:
    """One readiness check: an async callable, whether it is critical, its timeout.

    The check passes when it returns without raising, unless it returns ``False``;
    a string it returns is shown as its message. Since 0.1.0.
    """

    __slots__ = ("critical", "func", "name", "timeout")

    def __init__(
        self, name: str, func: CheckFunction, *, critical: bool = True, timeout: float | None = None
    ) -> None:
        if not name:
            raise ValueError("a check needs a name")
        if not callable(func):
            raise TypeError(f"check {name!r}: {func!r} is not callable")
        if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"check {name!r}: timeout must be a positive number of seconds")
        self.name = name
        self.func = func
        self.critical = critical
        self.timeout = timeout


class HealthApp:
    """The probes app `health_app()` returns; see there. Since 0.1.0."""

    def __init__(self, checks: Iterable[Check], *, timeout: float) -> None:
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError("timeout must be a positive number of seconds")
        self.checks = tuple(checks)
        names = [check.name for check in self.checks]
        if len(set(names)) != len(names):
            raise ValueError(f"check names must be unique, got {names}")
        self.timeout = timeout
        self.started = False

    def mark_started(self) -> None:
        """Report startup as complete (LifespanMiddleware calls this)."""
        self.started = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "lifespan":  # served on its own, without observe()
            await self._lifespan(receive, send)
            return
        if scope_type != "http":
            if scope_type == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        # Only the last path segment counts, so the app answers wherever it is mounted.
        probe = scope["path"].rstrip("/").rsplit("/", 1)[-1]
        if probe not in ("live", "ready", "startup"):
            await _respond(send, scope, 404, {"status": "not_found"})
        elif scope["method"] not in ("GET", "HEAD"):
            await _respond(send, scope, 405, {"status": "method_not_allowed"})
        elif probe == "live":
            await _respond(send, scope, 200, {"status": "alive"})
        elif probe == "startup":
            if self.started:
                await _respond(send, scope, 200, {"status": "started"})
            else:
                await _respond(send, scope, 503, {"status": "starting"})
        else:
            status, body = await self.readiness()
            await _respond(send, scope, status, body)

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        """Run every check concurrently; return the HTTP status and the JSON body."""
        results = await asyncio.gather(*(self._run(check) for check in self.checks))
        checks = {check.name: result for check, result in zip(self.checks, results, strict=True)}
        failed = [check for check in self.checks if checks[check.name]["status"] != "pass"]
        if any(check.critical for check in failed):
            overall, status = "unhealthy", 503
        else:
            overall, status = ("degraded" if failed else "healthy"), 200
        return status, {"status": overall, "checks": checks}

    async def _run(self, check: Check) -> dict[str, Any]:
        timeout = check.timeout or self.timeout
        start = time.perf_counter()
        status, message = "fail", None
        task: asyncio.Task[object] = asyncio.ensure_future(_call(check.func))
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                message = f"timed out after {timeout:g} s"
            elif task.cancelled():
                message = "cancelled"
            elif (error := task.exception()) is not None:
                message = _describe(error)
            else:
                value = task.result()
                status = "fail" if value is False else "pass"
                message = value if isinstance(value, str) else None
        finally:
            if not task.done():
                task.cancel()
                _abandoned.add(task)
                task.add_done_callback(_forget)
        latency_ms = round((time.perf_counter() - start) * 1000, 3)
        return {
            "status": status,
            "critical": check.critical,
            "latency_ms": latency_ms,
            "message": message,
        }

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.mark_started()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def health_app(
    checks: Mapping[str, CheckFunction] | Iterable[Check] = (),
    *,
    timeout: float = 1.0,
) -> HealthApp:
    """A mountable ASGI app answering ``/live``, ``/ready`` and ``/startup`` probes.

    Args:
        checks: async callables by name (all critical), or `Check` objects.
        timeout: seconds each check may take unless its `Check` says otherwise.

    ``/live`` is 200 while the process serves. ``/ready`` runs the checks concurrently
    and is 200 when every critical check passes (``healthy``, or ``degraded`` when a
    non-critical one failed), 503 otherwise (``unhealthy``). ``/startup`` is 503 until
    lifespan startup completed. A check that raises or hangs fails; the probe never
    does. See docs/health.md.

    Since 0.1.0.
    """
    if isinstance(checks, Mapping):
        checks = [Check(name, func) for name, func in checks.items()]
    return HealthApp(checks, timeout=timeout)


async def _call(func: CheckFunction) -> object:
    return await func()


def _describe(error: BaseException) -> str:
    text = redact_userinfo(f"{type(error).__name__}: {error}", "***")  # user:password@
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _forget(task: asyncio.Task[object]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


async def _respond(send: Send, scope: Scope, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [*_JSON, (b"content-length", str(len(payload)).encode())]
    if status == 405:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send(
        {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else payload}
    )
