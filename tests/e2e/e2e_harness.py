"""Helpers for end-to-end tests: real servers on 127.0.0.1, random ports, bounded time.

Every process a test starts runs in its own session (process group) and is stopped,
with its children (uvicorn workers), when the `running` context exits, whatever happened.
Threads started here (the OTLP receiver, the echo server) are loopback-only and shut down
by the fixtures in conftest.py.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_binary(name: str) -> str:
    """Path of an external binary; missing fails the test in CI and skips it locally."""
    path = shutil.which(name)
    if path is None:
        reason = (
            f"{name!r} is not installed (Debian package 'prometheus'; "
            "run .ci/install-system-deps as root)"
        )
        if in_ci():
            pytest.fail(reason + " -- required when CI=true", pytrace=False)
        pytest.skip(reason)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.05, what: str = ""
) -> T:
    """Call `probe` until it returns something other than None/False; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = probe()
        except Exception as exc:  # the probe's target may not be up yet
            last_error, result = exc, None
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}{detail}")
        time.sleep(interval)


# --- subprocess servers -------------------------------------------------------------------


@dataclass
class Process:
    """A started child process whose combined stdout/stderr goes to `log_path`."""

    argv: Sequence[str]
    popen: subprocess.Popen[bytes]
    log_path: Path
    base_url: str = ""

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        """Every line of the output that is a JSON object."""
        entries = []
        for line in self.output().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            # The whole group: uvicorn --workers N forks children we also own.
            _signal_group(self.popen, signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen, signal.SIGKILL)
                self.popen.wait(timeout=STOP_TIMEOUT_S)
        # Workers that outlived their parent.
        _signal_group(self.popen, signal.SIGKILL)


def _signal_group(popen: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, sig)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without OTEL_*/SENTRY_*/PROMETHEUS_* settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "SENTRY_", "PROMETHEUS_", "ASGI_OBSERVE_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


@contextmanager
def running(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str],
    ready: Callable[[Process], bool] | None = None,
    base_url: str = "",
    timeout: float = START_TIMEOUT_S,
    cwd: Path = REPO_ROOT,
) -> Iterator[Process]:
    """Start `argv`, wait until `ready(process)` is true, and always stop it on exit."""
    log_file = log_path.open("wb")
    try:
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log_file.close()
    process = Process(argv=argv, popen=popen, log_path=log_path, base_url=base_url)
    try:
        if ready is not None:

            def probe() -> bool:
                if not process.alive():
                    raise RuntimeError(
                        f"{argv[0]} exited with {popen.returncode}:\n{process.output()[-4000:]}"
                    )
                return ready(process)

            try:
                wait_until(probe, timeout=timeout, interval=0.1, what=" ".join(argv))
            except RuntimeError as exc:
                raise AssertionError(str(exc)) from None
        yield process
    finally:
        process.stop()


def http_ready(path: str, *, status: int | None = None) -> Callable[[Process], bool]:
    """A readiness probe: GET base_url + path answers (with `status`, when given)."""

    def probe(process: Process) -> bool:
        try:
            response = httpx.get(process.base_url + path, timeout=1.0)
        except httpx.HTTPError:
            return False
        return status is None or response.status_code == status

    return probe


def asgi_server_argv(server: str, target: str, port: int, *, workers: int = 1) -> list[str]:
    """Command line serving `module:app` with uvicorn, hypercorn, granian or daphne."""
    if server == "uvicorn":
        argv = [
            str(BIN_DIR / "uvicorn"),
            target,
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        if workers > 1:
            argv += ["--workers", str(workers)]
        return argv
    if server == "hypercorn":
        return [
            str(BIN_DIR / "hypercorn"),
            target,
            "--bind",
            f"{LOOPBACK}:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "WARNING",
        ]
    if server == "granian":
        return [
            str(BIN_DIR / "granian"),
            "--interface",
            "asgi",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            target,
        ]
    if server == "daphne":
        if workers > 1:
            raise ValueError("daphne serves from one process")
        return [str(BIN_DIR / "daphne"), "-b", LOOPBACK, "-p", str(port), "-v", "0", target]
    raise ValueError(f"unknown server {server!r}")


# --- OTLP/HTTP receiver -------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedSpan:
    service_name: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    status_code: int
    attributes: dict[str, Any]
    events: tuple[str, ...]
    exception_types: tuple[str, ...] = ()  # exception.type of each exception event


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def decode_export_request(body: bytes) -> list[ExportedSpan]:
    """Spans of one OTLP/HTTP protobuf ExportTraceServiceRequest."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[ExportedSpan] = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _any_value(kv.value) for kv in resource_spans.resource.attributes}
        service_name = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            spans.extend(
                ExportedSpan(
                    service_name=service_name,
                    name=span.name,
                    kind=span.kind,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    status_code=span.status.code,
                    attributes={kv.key: _any_value(kv.value) for kv in span.attributes},
                    events=tuple(event.name for event in span.events),
                    exception_types=tuple(
                        str(_any_value(kv.value))
                        for event in span.events
                        if event.name == "exception"
                        for kv in event.attributes
                        if kv.key == "exception.type"
                    ),
                )
                for span in scope_spans.spans
            )
    return spans


@dataclass(frozen=True)
class ExportedPoint:
    """One metric data point, flattened with its resource and instrument."""

    service_name: str
    instance_id: str
    name: str
    unit: str
    temporality: int  # 1 delta, 2 cumulative (AggregationTemporality); 0 for gauges
    attributes: dict[str, Any]
    value: float  # a sum's value, or a histogram's count
    bounds: tuple[float, ...] = ()
    exemplar_trace_ids: tuple[str, ...] = ()


def decode_metrics_request(body: bytes) -> list[ExportedPoint]:
    """Points of one OTLP ExportMetricsServiceRequest (protobuf)."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    points: list[ExportedPoint] = []
    for resource_metrics in request.resource_metrics:
        resource = {kv.key: _any_value(kv.value) for kv in resource_metrics.resource.attributes}
        service = str(resource.get("service.name", ""))
        instance = str(resource.get("service.instance.id", ""))
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                data = getattr(metric, kind)
                temporality = getattr(data, "aggregation_temporality", 0)
                for point in data.data_points:
                    attributes = {kv.key: _any_value(kv.value) for kv in point.attributes}
                    if kind == "histogram":
                        value = float(point.count)
                    else:
                        value = float(point.as_int if point.HasField("as_int") else point.as_double)
                    points.append(
                        ExportedPoint(
                            service_name=service,
                            instance_id=instance,
                            name=metric.name,
                            unit=metric.unit,
                            temporality=temporality,
                            attributes=attributes,
                            value=value,
                            bounds=tuple(getattr(point, "explicit_bounds", ())),
                            exemplar_trace_ids=tuple(
                                e.trace_id.hex() for e in getattr(point, "exemplars", ())
                            ),
                        )
                    )
    return points


@dataclass(frozen=True)
class ExportedLog:
    service_name: str
    body: Any
    severity_number: int
    severity_text: str
    trace_id: str
    span_id: str
    flags: int
    attributes: dict[str, Any]


def decode_logs_request(body: bytes) -> list[ExportedLog]:
    """Log records of one OTLP ExportLogsServiceRequest (protobuf)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    request.ParseFromString(body)
    logs: list[ExportedLog] = []
    for resource_logs in request.resource_logs:
        resource = {kv.key: _any_value(kv.value) for kv in resource_logs.resource.attributes}
        service = str(resource.get("service.name", ""))
        for scope_logs in resource_logs.scope_logs:
            logs.extend(
                ExportedLog(
                    service_name=service,
                    body=_any_value(record.body),
                    severity_number=record.severity_number,
                    severity_text=record.severity_text,
                    trace_id=record.trace_id.hex(),
                    span_id=record.span_id.hex(),
                    flags=record.flags,
                    attributes={kv.key: _any_value(kv.value) for kv in record.attributes},
                )
                for record in scope_logs.log_records
            )
    return logs


@dataclass
class Recorder:
    """What a loopback HTTP test server saw, safe to read from the test thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    items: list[Any] = field(default_factory=list)

    def add(self, *items: Any) -> None:
        with self.lock:
            self.items.extend(items)

    def snapshot(self) -> list[Any]:
        with self.lock:
            return list(self.items)

    def wait_for(self, predicate: Callable[[Any], bool], *, timeout: float = 15.0) -> list[Any]:
        """Items matching `predicate`, waiting until there is at least one."""
        return wait_until(
            lambda: [item for item in self.snapshot() if predicate(item)] or None,
            timeout=timeout,
            what="a matching item",
        )


class _QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        return body

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], recorder: Recorder) -> Iterator[str]:
    """Run `handler` on a random loopback port in a thread; yield its base URL."""
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    server.daemon_threads = True
    server.recorder = recorder  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=STOP_TIMEOUT_S)


class OTLPHandler(_QuietHandler):
    """Decodes traces, metrics and logs; the recorder holds spans, points and log records."""

    _DECODERS: dict[str, Callable[[bytes], list[Any]]] = {
        "/v1/traces": decode_export_request,
        "/v1/metrics": decode_metrics_request,
        "/v1/logs": decode_logs_request,
    }

    def do_POST(self) -> None:
        body = self._body()
        decode = self._DECODERS.get(self.path.rstrip("/"))
        if decode is None:
            self._reply(404, b"", "text/plain")
            return
        self.server.recorder.add(*decode(body))  # type: ignore[attr-defined]
        # Every Export*ServiceResponse is an empty message when all was accepted.
        self._reply(200, b"", "application/x-protobuf")


class EchoHandler(_QuietHandler):
    def _echo(self) -> None:
        self._body()
        headers = {key.lower(): value for key, value in self.headers.items()}
        self.server.recorder.add({"path": self.path, "headers": headers})  # type: ignore[attr-defined]
        self._reply(200, json.dumps({"path": self.path}).encode(), "application/json")

    do_GET = do_POST = _echo


@dataclass
class Collector:
    """A running loopback receiver and what it recorded."""

    url: str
    recorder: Recorder


def app_env(otlp: Collector, echo: Collector, **extra: str) -> dict[str, str]:
    """Environment for an example app: exporter to `otlp`, downstream calls to `echo`."""
    return clean_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "DOWNSTREAM_URL": f"{echo.url}/echo",
            **extra,
        }
    )
