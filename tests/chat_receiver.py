"""Telegram's Bot API and Slack/Discord/JSON webhooks played by one server on 127.0.0.1.

A threaded HTTP server in the test process records every POST (path, parsed JSON body,
arrival time) and answers from a script: each answer is (status, headers, JSON or text),
taken in order, then the default success of the endpoint. `hang()` makes it accept
connections and never answer, which is what a black-holed destination looks like.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "123456789:PLANTED-bot-TOKEN-abcdefghijklmnop"


@dataclass
class Posted:
    path: str
    body: Any
    raw: bytes
    at: float  # time.monotonic() at arrival


Answer = tuple[int, dict[str, str], Any]


class ChatReceiver:
    def __init__(self) -> None:
        self.posted: list[Posted] = []
        self.script: list[Answer] = []
        self.delay = 0.0
        self._hang = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver._hang.is_set():
                    receiver._release.wait(30)
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with receiver._lock:
                    receiver.posted.append(Posted(self.path, body, raw, time.monotonic()))
                    answer = receiver.script.pop(0) if receiver.script else None
                if receiver.delay:
                    time.sleep(receiver.delay)
                status, headers, payload = answer or _success(self.path)
                data = (
                    payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def hang(self) -> None:
        self._hang.set()

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def bodies(self, path_part: str = "") -> list[Any]:
        with self._lock:
            return [p.body for p in self.posted if path_part in p.path]

    def texts(self) -> list[str]:
        """Telegram's `text`, Slack's `text`, Discord's `content`, in arrival order."""
        found = []
        for body in self.bodies():
            for key in ("text", "content"):
                if isinstance(body, dict) and isinstance(body.get(key), str):
                    found.append(body[key])
                    break
        return found

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Posted]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.posted) >= count:
                    return list(self.posted)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} posts, got {len(self.posted)}")


def _success(path: str) -> Answer:
    if path.endswith("/sendMessage"):
        return 200, {"Content-Type": "application/json"}, {"ok": True, "result": {"message_id": 1}}
    if path.startswith("/slack"):
        return 200, {"Content-Type": "text/plain"}, "ok"
    return 204 if path.startswith("/discord") else 200, {}, ""


@contextmanager
def chat_receiver() -> Iterator[ChatReceiver]:
    receiver = ChatReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


def closed_port_url() -> str:
    """A loopback URL on which nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
