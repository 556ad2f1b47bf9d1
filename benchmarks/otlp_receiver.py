"""A loopback OTLP/HTTP receiver for the production-shaped rows, in a process of its own.

Run: `.venv/bin/python benchmarks/otlp_receiver.py` prints `PORT <n>` once it listens on
127.0.0.1, answers every `POST /v1/traces` with 200 and an empty
ExportTraceServiceResponse, and `GET /stats` with the requests and bytes it took, as JSON.
It stops on SIGTERM or when its stdin closes (the benchmark that started it ended).

A process of its own, so what the receiver does is not timed or counted in the rows: the
rows pay for encoding and posting their spans, as a server exporting to a collector does.
`Receiver` starts one and stops it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

START_TIMEOUT_S = 20.0


class _Stats:
    requests = 0
    bytes = 0
    lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's requests session expects

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with _Stats.lock:
            _Stats.requests += 1
            _Stats.bytes += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        with _Stats.lock:
            body = json.dumps({"requests": _Stats.requests, "bytes": _Stats.bytes}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None  # one line per export would swamp the benchmark's output


def serve() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sys.stdin.read()  # returns when the parent closes our stdin or exits
    server.shutdown()


class Receiver:
    """Starts the receiver process; `endpoint` is its traces URL. A context manager."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"the OTLP receiver did not start: {line!r}")
        self.port = int(line.split()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}/v1/traces"

    def stats(self) -> dict[str, int]:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as reply:
            stats: dict[str, int] = json.loads(reply.read())
        return stats

    def close(self) -> None:
        process = self._process
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


if __name__ == "__main__":
    serve()
