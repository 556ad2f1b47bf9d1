"""LifespanMiddleware: flush telemetry at shutdown, and answer lifespan for apps that do not."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from asgi_observe._core.types import ASGIApp, Message, Receive, Scope, Send
from asgi_observe.setup.flush import flush_telemetry

if TYPE_CHECKING:
    from asgi_observe.setup.config import TelemetryHandle

__all__ = ["LifespanMiddleware"]

_logger = logging.getLogger("asgi_observe.lifespan")


class StartupListener(Protocol):
    def mark_started(self) -> None: ...


class LifespanMiddleware:
    """Flush spans, metrics and Sentry events when the server shuts the app down.

    On ``lifespan.shutdown`` the app runs its own shutdown first (anything it records
    then is kept); when it answers ``lifespan.shutdown.complete`` (or ``failed``) the
    telemetry is flushed, at most `flush_timeout` seconds, and only then is the answer
    passed to the server, which may exit the process as soon as it has it.

    Apps that do not speak lifespan (they raise on the scope, or return without
    answering) still work: the middleware answers startup and shutdown itself, as a
    server in "lifespan auto" mode would expect. HTTP and websocket scopes pass
    straight through; under a server that sends no lifespan at all (daphne), the first
    of them tells `health` that startup is done.

    Args:
        app: the ASGI application to wrap (observe() puts this layer outermost).
        handle: what `configure()` returned; None flushes the global providers.
        health: told when startup completed (the health app's ``/startup`` probe).
        flush_timeout: seconds the shutdown flush may take.
        tracer_provider: a provider the layers use that is not the global one; it is
            flushed too.

    Since 0.1.0.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        handle: TelemetryHandle | None = None,
        health: StartupListener | None = None,
        flush_timeout: float = 5.0,
        tracer_provider: Any = None,
    ) -> None:
        if flush_timeout < 0:
            raise ValueError("flush_timeout must be >= 0")
        self.app = app
        if tracer_provider is not None:
            extra = (tracer_provider,)
            self._flush_function: Callable[[float], bool] = lambda timeout: flush_telemetry(
                timeout, extra
            )
        elif handle is not None:
            self._flush_function = handle.force_flush
        else:
            self._flush_function = flush_telemetry
        self._health = health
        self._flush_timeout = flush_timeout
        # A server that never sends lifespan (daphne, `uvicorn --lifespan off`) serves
        # requests only once it is up: the first one marks startup done for /startup.
        self._lifespan_pending = health is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            if self._lifespan_pending:
                self._lifespan_pending = False
                self._started()
            await self.app(scope, receive, send)
            return
        self._lifespan_pending = False
        seen: set[str] = set()  # lifespan message types received and sent so far

        async def receive_wrapper() -> Message:
            message = await receive()
            seen.add(message["type"])
            return message

        async def send_wrapper(message: Message) -> None:
            message_type = message["type"]
            seen.add(message_type)
            if message_type == "lifespan.startup.complete":
                self._started()
            elif message_type.startswith("lifespan.shutdown."):
                await self._flush()
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except Exception:
            if _answered_startup(seen):
                if not _answered_shutdown(seen):
                    await self._flush()
                raise
            # "lifespan auto": an app that raises before answering startup does not
            # support lifespan. One that had read the startup event may have failed
            # for real, so that case is logged where it will be seen.
            if "lifespan.startup" in seen:
                _logger.error("The app raised during lifespan startup", exc_info=True)
            else:
                _logger.debug("The app does not support lifespan", exc_info=True)
        else:
            if _answered_shutdown(seen) or "lifespan.startup.failed" in seen:
                return
        await self._answer(receive, send, seen)

    async def _answer(self, receive: Receive, send: Send, seen: set[str]) -> None:
        if not _answered_startup(seen):
            if "lifespan.startup" not in seen:
                await receive()
            self._started()
            await send({"type": "lifespan.startup.complete"})
        if "lifespan.shutdown" not in seen:
            while (await receive())["type"] != "lifespan.shutdown":
                pass
        await self._flush()
        await send({"type": "lifespan.shutdown.complete"})

    def _started(self) -> None:
        if self._health is not None:
            self._health.mark_started()

    async def _flush(self) -> None:
        # In a worker thread, so the loop keeps running while exporters send; under a
        # non-asyncio loop (trio) the bounded flush simply blocks.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush_function(self._flush_timeout)
            return
        await loop.run_in_executor(None, self._flush_function, self._flush_timeout)


def _answered_startup(seen: set[str]) -> bool:
    return "lifespan.startup.complete" in seen or "lifespan.startup.failed" in seen


def _answered_shutdown(seen: set[str]) -> bool:
    return "lifespan.shutdown.complete" in seen or "lifespan.shutdown.failed" in seen
