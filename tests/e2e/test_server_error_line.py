"""The server's own error line carries the ids of the request that raised.

uvicorn logs ``Exception in ASGI application`` and hypercorn ``Error in ASGI Framework``
after the app's call returned, when the request's context is gone; the ids travel on the
exception. Checked through the real servers, with a plain format and with JSON lines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from e2e_harness import (
    BIN_DIR,
    LOOPBACK,
    asgi_server_argv,
    clean_env,
    free_port,
    http_ready,
    running,
    wait_until,
)

pytestmark = pytest.mark.e2e

APP = """\
from asgi_observe import observe


async def failing(scope, receive, send):
    if scope["type"] == "http" and scope["path"] != "/ready":
        raise RuntimeError("boom")
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


app = observe(failing)
"""
SERVER_LINES = {"uvicorn": "Exception in ASGI application", "hypercorn": "Error in ASGI Framework"}
SERVER_LOGGERS = {"uvicorn": "uvicorn.error", "hypercorn": "hypercorn.error"}
PLAIN = "%(levelname)s request_id=%(request_id)s trace_id=%(trace_id)s %(message)s"


def log_config(server: str, style: str) -> dict[str, object]:
    formatter: dict[str, object] = (
        {"()": "asgi_observe.logs.correlation.JsonFormatter"}
        if style == "json"
        else {"format": PLAIN}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # The filter gives every record the three attributes, also those written before
        # observe() installed its record factory (the server's startup lines).
        "filters": {"ids": {"()": "asgi_observe.logs.correlation.RequestContextFilter"}},
        "formatters": {"main": formatter},
        "handlers": {
            "main": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "filters": ["ids"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            SERVER_LOGGERS[server]: {"handlers": ["main"], "level": "INFO", "propagate": False}
        },
    }


@pytest.mark.parametrize("style", ["plain", "json"])
@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_the_servers_error_line_has_the_request_and_trace_ids(
    tmp_path: Path, server: str, style: str
) -> None:
    (tmp_path / "error_app.py").write_text(APP)
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(log_config(server, style)))
    port = free_port()
    argv = asgi_server_argv(server, "error_app:app", port)
    if server == "uvicorn":
        argv += ["--app-dir", str(tmp_path), "--log-config", str(config)]
    else:
        argv += ["--log-config", f"json:{config}"]
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {
        "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
        "x-request-id": "req-error-line-1",
    }
    env = clean_env({"PYTHONPATH": str(tmp_path)})
    base_url = f"http://{LOOPBACK}:{port}"

    def ready(process: object) -> bool:
        try:
            return 204 == httpx.get(base_url + "/ready", timeout=1.0).status_code
        except httpx.HTTPError:
            return False

    with running(
        argv, log_path=tmp_path / "server.log", env=env, ready=ready, base_url=base_url
    ) as process:
        response = httpx.get(base_url + "/fail", headers=headers, timeout=5.0)
        line = SERVER_LINES[server]
        wait_until(lambda: line in process.output(), timeout=10, what=line)
        output = process.output()

    assert 500 == response.status_code
    assert "req-error-line-1" == response.headers["x-request-id"]
    if style == "json":
        [entry] = [e for e in process.json_lines() if e.get("message", "").startswith(line)]
        assert ("req-error-line-1", trace_id, "ERROR") == (
            entry["request_id"],
            entry["trace_id"],
            entry["level"],
        )
        assert re.fullmatch(r"[0-9a-f]{16}", entry["span_id"])
        assert "RuntimeError: boom" in entry["exception"]
    else:
        [found] = [text for text in output.splitlines() if line in text]
        assert f"ERROR request_id=req-error-line-1 trace_id={trace_id} {line}" == found.strip()


def test_asgi_observe_run_json_logs_give_the_error_line_its_ids(tmp_path: Path) -> None:
    (tmp_path / "bare_app.py").write_text(APP.replace("app = observe(failing)", "app = failing"))
    port = free_port()
    argv = [str(BIN_DIR / "asgi-observe"), "run", "bare_app:app", "--app-dir", str(tmp_path)]
    argv += ["--port", str(port), "--json-logs"]
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    headers = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-01", "x-request-id": "req-cli-1"}
    line = SERVER_LINES["uvicorn"]
    with running(
        argv,
        log_path=tmp_path / "server.log",
        env=clean_env(),
        ready=http_ready("/ready", status=204),
        base_url=f"http://{LOOPBACK}:{port}",
    ) as process:
        response = httpx.get(process.base_url + "/fail", headers=headers, timeout=5.0)
        wait_until(lambda: line in process.output(), timeout=10, what=line)

    assert 500 == response.status_code
    [entry] = [e for e in process.json_lines() if e.get("message", "").startswith(line)]
    assert ("req-cli-1", trace_id) == (entry["request_id"], entry["trace_id"])
