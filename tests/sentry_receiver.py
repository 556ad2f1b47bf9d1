"""A Sentry ingest stand-in on 127.0.0.1, and a fixture running the real sentry-sdk against it.

The receiver is a threaded HTTP server in the test process: it stores the raw bytes of
each envelope sentry-sdk's HTTP transport posts, decompresses them and parses the
envelope items, so tests assert on what actually left the process.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sentry_sdk

Event = dict[str, Any]


class Receiver:
    """Collects envelopes posted to ``/api/<project>/envelope/``."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.bodies: list[bytes] = []  # decompressed envelope bytes, as they arrived
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    raw = gzip.decompress(raw)
                elif encoding == "br":  # pragma: no cover - brotli is not installed here
                    import brotli  # type: ignore[import-not-found]

                    raw = brotli.decompress(raw)
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.bodies.append(raw)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.port}/1"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    @property
    def raw(self) -> bytes:
        with self._lock:
            return b"\n".join(self.bodies)

    def items(self, item_type: str) -> list[Event]:
        found = []
        with self._lock:
            bodies = list(self.bodies)
        for body in bodies:
            found.extend(payload for kind, payload in parse_envelope(body) if kind == item_type)
        return found

    @property
    def events(self) -> list[Event]:
        return self.items("event")

    @property
    def envelope_headers(self) -> list[Event]:
        with self._lock:
            bodies = list(self.bodies)
        return [json.loads(body.split(b"\n", 1)[0]) for body in bodies]


def parse_envelope(body: bytes) -> list[tuple[str, Any]]:
    """Split a Sentry envelope into (item type, parsed payload) pairs."""
    items: list[tuple[str, Any]] = []
    position = body.find(b"\n") + 1  # after the envelope header
    while 0 < position < len(body):
        end = _line_end(body, position)
        line, position = body[position:end], end + 1
        if not line.strip():
            continue
        header = json.loads(line)
        length = header.get("length")
        end = _line_end(body, position) if length is None else position + int(length)
        payload, position = body[position:end], end + 1
        try:
            items.append((header.get("type", ""), json.loads(payload)))
        except ValueError:
            items.append((header.get("type", ""), payload))
    return items


def _line_end(body: bytes, start: int) -> int:
    end = body.find(b"\n", start)
    return len(body) if end == -1 else end


def free_closed_port() -> int:
    """A port nothing listens on (bound once, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def sentry_client(dsn: str, **options: Any) -> Iterator[Any]:
    """`sentry_sdk.init` for one test; closed (worker thread joined) and cleared after."""
    client_options: dict[str, Any] = {"dsn": dsn, "shutdown_timeout": 2}
    workers_before = sentry_workers()
    client_options.update(options)
    with warnings.catch_warnings():
        # sentry-sdk 2.7x deprecates send_default_pii (for data_collection); tests still
        # cover it because deployed apps still set it.
        warnings.filterwarnings("ignore", "The send_default_pii option", DeprecationWarning)
        sentry_sdk.init(**client_options)
    client = sentry_sdk.get_client()
    try:
        yield client
    finally:
        client.close(timeout=2)
        join_sentry_workers(sentry_workers() - workers_before, timeout=2)
        sentry_sdk.get_global_scope().set_client(None)
        sentry_sdk.get_isolation_scope().clear()
        sentry_sdk.get_current_scope().clear()


def sentry_workers() -> set[threading.Thread]:
    """The sentry-sdk transport worker threads alive now."""
    return {t for t in threading.enumerate() if t.name == "sentry-sdk.BackgroundWorker"}


def join_sentry_workers(workers: set[threading.Thread], timeout: float = 5.0) -> None:
    """Wait for closed clients' worker threads, so their retries log into no later test.

    `close(timeout)` only waits that long; a worker still retrying against a receiver
    that is down goes on sending, and urllib3 logs each retry wherever it runs.
    """
    deadline = time.monotonic() + timeout
    for thread in workers:
        thread.join(max(0.0, deadline - time.monotonic()))


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
