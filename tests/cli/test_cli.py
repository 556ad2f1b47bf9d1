"""The asgi-observe command: launched as a process, called over 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.e2e_harness import (
    BIN_DIR,
    LOOPBACK,
    Process,
    clean_env,
    free_port,
    http_ready,
    running,
    wait_until,
)
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e

SAMPLE_APP = """
import logging
import os

logger = logging.getLogger("sample")


async def app(scope, receive, send):
    if scope["type"] != "http":  # no lifespan support at all
        return
    logger.info("hello from %s", os.getpid())
    if scope["path"] == "/pid":
        body, status = str(os.getpid()).encode(), 200
    elif scope["path"] == "/hello":
        body, status = b"hello", 200
    else:
        body, status = b"nope", 404
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


def create_app():
    return app
"""
DURATION_COUNT = "http_server_request_duration_seconds_count"


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "sample_app.py").write_text(textwrap.dedent(SAMPLE_APP))
    return tmp_path


def cli(*args: str) -> list[str]:
    return [str(BIN_DIR / "asgi-observe"), *args]


def serve(
    tmp_path: Path, app_dir: Path, *args: str, env: dict[str, str] | None = None
) -> AbstractContextManager[Process]:
    port = free_port()
    argv = cli("run", "sample_app:app", "--app-dir", str(app_dir), "--port", str(port), *args)
    return running(
        argv,
        log_path=tmp_path / "server.log",
        env=clean_env(env),
        ready=http_ready("/hello", status=200),
        base_url=f"http://{LOOPBACK}:{port}",
    )


def request_counts(metrics_text: str, route_filter: str | None = None) -> float:
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == DURATION_COUNT and (
                route_filter is None or sample.labels.get("http_route") == route_filter
            ):
                total += sample.value
    return total


def test_run_serves_the_app_observed_with_metrics_at_metrics(tmp_path: Path, app_dir: Path) -> None:
    with serve(tmp_path, app_dir) as server:
        response = httpx.get(server.base_url + "/hello", timeout=5)
        metrics = httpx.get(server.base_url + "/metrics", timeout=5)

    assert (200, "hello") == (response.status_code, response.text)
    assert 32 == len(response.headers["x-request-id"])
    assert 200 == metrics.status_code
    assert request_counts(metrics.text) >= 1
    output = server.output()
    assert f"serving sample_app:app at {server.base_url}" in output
    assert f"metrics: {server.base_url}/metrics" in output


def test_metrics_path_moves_and_no_metrics_path_turns_it_off(tmp_path: Path, app_dir: Path) -> None:
    with serve(tmp_path, app_dir, "--metrics-path", "/internal/metrics") as server:
        moved = httpx.get(server.base_url + "/internal/metrics", timeout=5)
        old = httpx.get(server.base_url + "/metrics", timeout=5)
    with serve(tmp_path, app_dir, "--no-metrics-path") as server:
        off = httpx.get(server.base_url + "/metrics", timeout=5)

    assert (200, 404, 404) == (moved.status_code, old.status_code, off.status_code)
    assert "http_server_request_duration_seconds" in moved.text
    assert "nope" == off.text  # the app's own 404


def test_health_probes_and_factory(tmp_path: Path, app_dir: Path) -> None:
    """An app without lifespan support still reports startup complete."""
    args = ("--health-path", "/health")
    with serve(tmp_path, app_dir, *args) as server:
        probes = [
            httpx.get(f"{server.base_url}/health/{p}", timeout=5) for p in ("live", "startup")
        ]
    port = free_port()
    argv = cli("run", "sample_app:create_app", "--factory", "--app-dir", str(app_dir))
    with running(
        [*argv, "--port", str(port)],
        log_path=tmp_path / "factory.log",
        env=clean_env(),
        ready=http_ready("/hello", status=200),
        base_url=f"http://{LOOPBACK}:{port}",
    ):
        pass

    assert [200, 200] == [probe.status_code for probe in probes]


def test_json_logs_carry_request_and_trace_ids(tmp_path: Path, app_dir: Path) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01", "x-request-id": "req-1"}
    with serve(tmp_path, app_dir, "--json-logs", "--access-log") as server:
        httpx.get(server.base_url + "/hello", headers=headers, timeout=5)
        wait_until(lambda: 2 <= len(_lines_of(server, "req-1")), timeout=10)
        lines = _lines_of(server, "req-1")

    assert {"sample", "asgi_observe.access"} == {line["logger"] for line in lines}
    assert {trace_id} == {line["trace_id"] for line in lines}


def test_access_log_alone_writes_one_line_per_request(tmp_path: Path, app_dir: Path) -> None:
    """Issue 13: under uvicorn's default logging, --access-log without --json-logs wrote
    nothing; control characters in the URL are escaped, never written raw."""
    with serve(tmp_path, app_dir, "--access-log") as server:
        httpx.get(server.base_url + "/hello", timeout=5)
        httpx.get(server.base_url + "/x%0d%0aINFO:%20forged%1b[31m", timeout=5)
        wait_until(lambda: "forged" in server.output(), timeout=10)
        output = server.output()

    assert "GET /hello 200" in output
    forged = [line for line in output.splitlines() if "forged" in line]
    assert 1 == len(forged)
    assert "\x1b" not in output
    assert "GET /x%0d%0aINFO:%20forged%1b[31m 404" in forged[0]


def _lines_of(server: Process, request_id: str) -> list[dict[str, Any]]:
    return [line for line in server.json_lines() if line.get("request_id") == request_id]


def test_sigterm_stops_gracefully(tmp_path: Path, app_dir: Path) -> None:
    """Shutdown runs to completion; then, as uvicorn does, the signal ends the process."""
    with serve(tmp_path, app_dir) as server:
        server.popen.send_signal(signal.SIGTERM)
        code = server.popen.wait(timeout=15)

    assert -signal.SIGTERM == code
    assert "Application shutdown complete" in server.output()


def test_workers_aggregate_metrics_and_clean_up_the_multiprocess_dir(
    tmp_path: Path, app_dir: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with serve(tmp_path, app_dir, "--workers", "2", env={"TMPDIR": str(scratch)}) as server:
        pids, sent = set(), 0
        # A new connection per request lets the kernel hand it to either worker.
        while sent < 400 and not (len(pids) == 2 and sent >= 40):
            pids.add(httpx.get(server.base_url + "/pid", timeout=5).text)
            sent += 1
        dirs = list(scratch.glob("asgi-observe-metrics-*"))
        db_files = [path.name for path in scratch.glob("asgi-observe-metrics-*/*.db")]
        with httpx.Client(base_url=server.base_url, timeout=5) as client:
            scrapes = {request_counts(client.get("/metrics").text) for _ in range(6)}
        server.popen.send_signal(signal.SIGTERM)
        server.popen.wait(timeout=20)

    assert "workers: 2, metrics summed across them; process_* per worker" in server.output()
    assert 2 == len(pids), "both workers answered"
    assert 1 == len(dirs)
    assert db_files, "workers wrote their samples there"
    # Every scrape, whichever worker answers it, counts every worker's requests
    # (plus the readiness probe's /hello calls and earlier scrapes).
    assert all(count >= sent for count in scrapes), scrapes
    assert [] == list(scratch.glob("asgi-observe-metrics-*"))


def test_a_user_multiproc_dir_is_kept(tmp_path: Path, app_dir: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(mine)}
    with serve(tmp_path, app_dir, "--workers", "2", env=env) as server:
        httpx.get(server.base_url + "/hello", timeout=5)

    assert mine.is_dir()
    assert list(mine.glob("*.db"))


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({"OTEL_TRACES_SAMPLER_ARG": "abc"}, (), "OTEL_TRACES_SAMPLER_ARG='abc'"),
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, (), "OTEL_TRACES_EXPORTER='jaeger'"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "nokey"}, (), "OTEL_EXPORTER_OTLP_HEADERS"),
        ({}, ("--workers", "0"), "--workers must be at least 1"),
        ({}, ("--metrics-path", "metrics"), "paths must start with '/'"),
        ({}, ("--viewer", "_observe"), "paths must start with '/'"),
        ({}, ("--viewer", "--workers", "2"), "--viewer needs --workers 1"),
        ({}, ("--port", "99999"), "--port must be between 0 and 65535, not 99999"),
        ({}, ("--port", "-1"), "--port must be between 0 and 65535, not -1"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}, (), "OTEL_EXPORTER_OTLP_ENDPOINT="),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "not-a-url"}, (), "OTEL_EXPORTER_OTLP_ENDPOINT="),
        ({"OTEL_BSP_SCHEDULE_DELAY": "soon"}, (), "OTEL_BSP_SCHEDULE_DELAY='soon'"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "0"}, (), "OTEL_METRIC_EXPORT_INTERVAL='0'"),
    ],
)
def test_bad_configuration_fails_at_startup_with_a_clear_message(
    env: dict[str, str], args: tuple[str, ...], expected: str
) -> None:
    result = subprocess.run(
        cli("run", "sample_app:app", "--port", str(free_port()), *args),
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert 2 == result.returncode
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_target_must_be_module_colon_app() -> None:
    result = subprocess.run(
        cli("run", "sample_app"), env=clean_env(), capture_output=True, text=True, timeout=30
    )

    assert (2, True) == (result.returncode, "expected MODULE:APP" in result.stderr)


WRONG_TARGETS = [
    # (target, file written in the app dir, exit status, the one error line)
    ("nosuch:app", None, 2, "cannot import 'nosuch': No module named 'nosuch'"),
    ("nosuch.sub:app", None, 2, "cannot import 'nosuch.sub': No module named 'nosuch'"),
    ("sample_app:missing", None, 2, "module 'sample_app' has no attribute 'missing'"),
    ("sample_app:DURATION", None, 2, "'sample_app:DURATION' is str, not an ASGI app"),
]


@pytest.mark.parametrize(("target", "source", "status", "line"), WRONG_TARGETS)
def test_a_wrong_app_path_is_one_line_before_any_banner(
    app_dir: Path, target: str, source: str | None, status: int, line: str
) -> None:
    (app_dir / "sample_app.py").write_text(textwrap.dedent(SAMPLE_APP) + 'DURATION = "x"\n')
    result = subprocess.run(
        cli("run", target, "--app-dir", str(app_dir), "--port", str(free_port())),
        env=clean_env(), capture_output=True, text=True, timeout=30,
    )  # fmt: skip

    assert (status, "") == (result.returncode, result.stdout)  # no "serving ..." banner
    assert [f"asgi-observe: error: {line}"] == result.stderr.splitlines()


@pytest.mark.parametrize(
    ("source", "last_frame", "line"),
    [
        (
            'raise RuntimeError("database is down\\nretry later")\n',
            'raise RuntimeError("database is down',
            "importing 'broken_app' raised RuntimeError: database is down",
        ),
        (
            "import json\nimport nosuchdependency\n",
            "import nosuchdependency",
            "importing 'broken_app' failed: No module named 'nosuchdependency'",
        ),
    ],
    ids=["raises", "imports-a-missing-module"],
)
def test_an_error_inside_the_app_module_keeps_its_traceback(
    app_dir: Path, source: str, last_frame: str, line: str
) -> None:
    """The user's own bug: their frames, none of ours or importlib's, then one line."""
    (app_dir / "broken_app.py").write_text(source)
    result = subprocess.run(
        cli("run", "broken_app:app", "--app-dir", str(app_dir), "--port", str(free_port())),
        env=clean_env(), capture_output=True, text=True, timeout=30,
    )  # fmt: skip

    lines = result.stderr.splitlines()
    assert (1, "") == (result.returncode, result.stdout)
    assert "Traceback (most recent call last):" == lines[0]
    assert str(app_dir / "broken_app.py") in lines[1]
    assert last_frame in result.stderr
    assert f"asgi-observe: error: {line}" == lines[-1]
    assert not [x for x in lines if "importlib" in x or "asgi_observe" in x or "uvicorn" in x]


def test_version() -> None:
    from asgi_observe import __version__

    result = subprocess.run(cli("--version"), capture_output=True, text=True, timeout=30)
    assert (0, f"asgi-observe {__version__}") == (result.returncode, result.stdout.strip())


def test_the_service_name_defaults_to_the_app_path_and_the_banner_says_so(
    tmp_path: Path,
) -> None:
    from e2e.e2e_harness import OTLPHandler, Recorder, serving

    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    # An app that configures OpenTelemetry when imported must see the name as well.
    configured = "import asgi_observe\nasgi_observe.configure()\n" + textwrap.dedent(SAMPLE_APP)
    (package / "main.py").write_text(configured)
    port = free_port()
    recorder = Recorder()
    with serving(OTLPHandler, recorder) as otlp_url:
        env = clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url, "OTEL_BSP_SCHEDULE_DELAY": "50"})
        argv = cli("run", "shop.main:app", "--app-dir", str(tmp_path), "--port", str(port))
        with running(
            argv,
            log_path=tmp_path / "server.log",
            env=env,
            ready=http_ready("/hello", status=200),
            base_url=f"http://{LOOPBACK}:{port}",
        ) as server:
            spans = recorder.wait_for(lambda span: span.name == "GET")
            output = server.output()
    assert {"shop"} == {span.service_name for span in spans}
    assert "service: shop (from MODULE:APP; set OTEL_SERVICE_NAME to choose)" in output


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("myproject.main:app", "myproject"),
        ("shop.asgi:application", "shop"),
        ("main:app", "main"),
        ("sample_app:app", "sample_app"),
        ("a.b.server:create", "a.b"),
        ("examples.django_app:app", "examples.django_app"),
    ],
)
def test_default_service_name(target: str, expected: str) -> None:
    from asgi_observe.cli.target import default_service_name

    assert expected == default_service_name(target)


def test_the_banner_names_a_service_chosen_by_the_environment(
    tmp_path: Path, app_dir: Path
) -> None:
    with serve(tmp_path, app_dir, env={"OTEL_RESOURCE_ATTRIBUTES": "service.name=cart"}) as server:
        output = server.output()
    assert "service: cart (OTEL_RESOURCE_ATTRIBUTES)" in output


def test_python_dash_m_prints_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asgi_observe", "--help"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert 0 == result.returncode
    assert "run" in result.stdout
    assert "demo" in result.stdout


def test_demo_serves_routes_logs_metrics_and_console_spans(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    with running(
        cli("demo", "--port", str(port)),
        log_path=tmp_path / "demo.log",
        env=clean_env(),
        ready=http_ready("/health/live", status=200),
        base_url=base,
        cwd=tmp_path,
    ) as server:
        item = httpx.get(base + "/items/42", timeout=5)
        error = httpx.get(base + "/error", timeout=5)
        stream = httpx.get(base + "/stream", timeout=5)
        metrics = httpx.get(base + "/metrics", timeout=5)
        wait_until(lambda: '"name": "GET /items/{item_id}"' in server.output(), timeout=10)

    assert (200, 500, 200) == (item.status_code, error.status_code, stream.status_code)
    assert 5 == stream.text.count("chunk")
    assert request_counts(metrics.text, "/items/{item_id}") == 1
    output = server.output()
    assert f"metrics: {base}/metrics" in output
    request_id = item.headers["x-request-id"]
    logged = [line for line in server.json_lines() if line.get("request_id") == request_id]
    assert {"asgi_observe.demo", "asgi_observe.access"} <= {line["logger"] for line in logged}
    assert all(len(line["trace_id"]) == 32 for line in logged)
    spans = [json.loads(block) for block in _console_spans(output)]
    assert any(span["name"] == "demo.load_item" for span in spans)


def test_demo_starts_with_the_viewer_on_and_not_empty(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    with running(
        cli("demo", "--port", str(port)),
        log_path=tmp_path / "demo.log",
        env=clean_env(),
        ready=lambda process: "sent the demo" in process.output(),
        base_url=base,
        cwd=tmp_path,
    ) as server:
        traces = httpx.get(base + "/_observe/api/traces", timeout=5).json()["traces"]
        errors = httpx.get(base + "/_observe/api/errors", timeout=5).json()["groups"]
        page = httpx.get(base + "/_observe/", timeout=5)

    assert f"viewer:  {base}/_observe/" in server.output()
    assert {(200, "/"), (200, "/slow"), (404, "/no-such-page"), (500, "/error")} == {
        (t["status_code"], t["path"]) for t in traces
    }
    [slow] = [t for t in traces if t["path"] == "/slow"]
    assert slow["spans"] >= 4  # the server span and its children
    assert ["RuntimeError"] == [group["type"] for group in errors]
    assert 200 == page.status_code


def test_demo_without_the_viewer(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    with running(
        cli("demo", "--port", str(port), "--no-viewer"),
        log_path=tmp_path / "demo.log",
        env=clean_env(),
        ready=http_ready("/health/live", status=200),
        base_url=base,
        cwd=tmp_path,
    ) as server:
        viewer = httpx.get(base + "/_observe/", timeout=5)

    assert 404 == viewer.status_code
    assert "viewer:" not in server.output()


def _console_spans(output: str) -> list[str]:
    """The multi-line JSON objects ConsoleSpanExporter prints."""
    blocks, current = [], []
    for line in output.splitlines():
        if line == "{":
            current = [line]
        elif current:
            current.append(line)
            if line == "}":
                blocks.append("\n".join(current))
                current = []
    return blocks


def test_the_console_script_is_installed() -> None:
    assert os.access(BIN_DIR / "asgi-observe", os.X_OK)


def test_every_option_is_documented() -> None:
    from asgi_observe.cli.main import _parser

    page = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    parser = _parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices  # type: ignore[attr-defined]
    options = {
        option
        for command in subparsers.values()
        for action in command._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert [] == sorted(option for option in options if f"`{option}" not in page)
