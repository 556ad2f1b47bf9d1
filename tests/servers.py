"""Real ASGI servers in a background thread of the test process, on 127.0.0.1.

In-process, so a test can install a Sentry client, log handlers or span exporters and
still send its requests through uvicorn (h11 or httptools) or hypercorn over a socket.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SERVERS = ("uvicorn-h11", "uvicorn-httptools", "hypercorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(app: Any, server: str = "uvicorn-h11") -> Iterator[str]:
    """Serve `app` with `server` (one of `SERVERS`); yields the base URL."""
    port = free_port()
    if server.startswith("uvicorn"):
        runner = _uvicorn(app, port, server.partition("-")[2])
    elif server == "hypercorn":
        runner = _hypercorn(app, port)
    else:
        raise ValueError(server)
    with runner:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"


@contextmanager
def _uvicorn(app: Any, port: int, http: str) -> Iterator[None]:
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=http, lifespan="off", log_level="critical",
        access_log=False, log_config=None,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def _hypercorn(app: Any, port: int) -> Iterator[None]:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.loglevel = "CRITICAL"
    config.accesslog = None
    config.errorlog = None
    stop = threading.Event()

    async def shutdown_trigger() -> None:
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)

    async def main() -> None:
        await serve(app, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"no server on port {port}")
