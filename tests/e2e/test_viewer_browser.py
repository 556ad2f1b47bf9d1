"""The viewer in a real browser: headless Debian Chromium over Selenium, a real uvicorn.

The app runs under `asgi-observe run --viewer`; the browser is the system's Chromium
driven through the system's chromedriver (no browser or driver download). Assertions are
on the DOM; a screenshot of each view is saved in the test's temporary folder.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_harness import BIN_DIR, LOOPBACK, clean_env, free_port, http_ready, in_ci, running

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viewer"))
from viewer_app import SECRET

pytestmark = pytest.mark.e2e

APP_DIR = Path(__file__).resolve().parents[1] / "viewer"
APPS_DIR = Path(__file__).resolve().parent / "apps"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1440,900",
)
WAIT_S = 15


def _require(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        reason = f"{name!r} is not installed (Debian packages chromium, chromium-driver)"
        if in_ci():
            pytest.fail(reason + " -- required when CI=true", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    argv = [
        str(BIN_DIR / "asgi-observe"), "run", "viewer_app:app", "--app-dir", str(APP_DIR),
        "--port", str(port), "--viewer", "--json-logs",
    ]  # fmt: skip
    env = clean_env({"OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "viewer-e2e"})
    log_path = tmp_path_factory.mktemp("viewer-server") / "server.log"
    with running(
        argv, log_path=log_path, env=env, ready=http_ready("/metrics", status=200), base_url=base
    ) as process:
        yield process


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _require("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(
        service=Service(executable_path=_require("chromedriver")), options=options
    )
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def traffic(server: Any) -> dict[str, str]:
    """Real requests through uvicorn: a normal one, a slow one, a 404 and an error."""
    base = server.base_url
    normal = httpx.get(base + "/items/1", headers={"x-request-id": "browser-req-1"}, timeout=5)
    slow = httpx.get(base + "/slow", timeout=5)
    missing = httpx.get(base + "/nope", timeout=5)
    failed = httpx.get(
        base + f"/boom?token={SECRET}", headers={"authorization": f"Bearer {SECRET}"}, timeout=5
    )
    assert (200, 200, 404, 500) == tuple(r.status_code for r in (normal, slow, missing, failed))
    return {"request_id": normal.headers["x-request-id"]}


def _wait(driver: Any, condition: Any) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver, WAIT_S, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(condition)


# The page re-renders its lists on every poll: read them in one script call, atomically.
_READ = """return [...document.querySelectorAll(arguments[0])].map(
    (e) => Object.assign({text: e.innerText}, e.dataset));"""


def _rows(driver: Any, selector: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = driver.execute_script(_READ, selector)
    return rows


def _click(driver: Any, selector: str) -> None:
    """A real click on the element, found again if a refresh replaced it meanwhile."""

    def click(d: Any) -> bool:
        d.find_element("css selector", selector).click()
        return True

    _wait(driver, click)


def test_trace_list_fills_and_a_click_shows_the_waterfall(
    server: Any, browser: Any, traffic: dict[str, str], tmp_path: Path
) -> None:
    browser.get(server.base_url + "/_observe/")
    rows = _wait(browser, lambda d: (r := _rows(d, "#trace-list tbody tr")) and len(r) >= 4 and r)
    [slow] = [row for row in rows if "GET /slow" in row["text"]]
    _click(browser, f'#trace-list tr[data-trace-id="{slow["traceId"]}"]')
    spans = _wait(browser, lambda d: (s := _rows(d, "#waterfall .span-row")) and len(s) == 4 and s)
    facts = {span["name"]: (span["spanId"], span["parentId"], span["kind"]) for span in spans}
    _click(browser, '#waterfall .span-row[data-name="db.query"]')
    [info] = _wait(browser, lambda d: _rows(d, "#waterfall .span-info"))
    info_text = info["text"]
    browser.save_screenshot(str(tmp_path / "traces.png"))

    assert {"GET /slow", "load_user", "db.query", "render"} == set(facts)
    assert facts["load_user"][0] == facts["db.query"][1]
    assert facts["GET /slow"][0] == facts["load_user"][1]
    assert facts["GET /slow"][0] == facts["render"][1]
    assert "SERVER" == facts["GET /slow"][2]
    assert "SELECT 1" in info_text
    assert (tmp_path / "traces.png").stat().st_size > 10_000


def test_a_request_id_search_finds_the_request(
    server: Any, browser: Any, traffic: dict[str, str]
) -> None:
    browser.get(server.base_url + "/_observe/#traces")
    box = _wait(browser, lambda d: d.find_element("id", "trace-search"))
    box.clear()
    box.send_keys(traffic["request_id"] + "\n")
    rows = _wait(browser, lambda d: (r := _rows(d, "#trace-list tbody tr")) and len(r) == 1 and r)
    # The only match opens by itself.
    _wait(browser, lambda d: "GET /items/{item_id}" in d.find_element("id", "trace-detail").text)
    detail = browser.find_element("id", "trace-detail").text

    assert traffic["request_id"] == rows[0]["requestId"]
    assert f"request {traffic['request_id']}" in detail


def test_the_error_view_shows_a_scrubbed_error_linked_to_its_trace(
    server: Any, browser: Any, traffic: dict[str, str], tmp_path: Path
) -> None:
    browser.get(server.base_url + "/_observe/#errors")
    [group] = _wait(browser, lambda d: _rows(d, "#error-list tbody tr"))
    _click(browser, "#error-list tbody tr")
    _wait(browser, lambda d: _rows(d, "#error-title"))
    detail = browser.find_element("id", "error-detail").text
    browser.save_screenshot(str(tmp_path / "errors.png"))
    _click(browser, "#error-trace-link")
    spans = _wait(
        browser,
        lambda d: (s := _rows(d, "#waterfall .span-row")) and s[0]["name"] == "GET /boom" and s,
    )

    assert "RuntimeError" in group["text"] and "GET /boom" in group["text"]
    assert "payment failed for token [Filtered]" in detail
    assert "Bearer" not in detail and SECRET not in detail and SECRET not in browser.page_source
    assert "token=[Filtered]" in detail
    assert "GET /boom" == spans[0]["name"]
    assert 1 <= len(_rows(browser, "#waterfall .bar.ERROR"))  # drawn as failed


def test_the_red_table_shows_route_templates(
    server: Any, browser: Any, traffic: dict[str, str], tmp_path: Path
) -> None:
    browser.get(server.base_url + "/_observe/#red")
    rows = _wait(browser, lambda d: (r := _rows(d, "#red-table tbody tr")) and len(r) >= 4 and r)
    browser.save_screenshot(str(tmp_path / "red.png"))
    routes = {row["route"] for row in rows}

    assert {"/items/{item_id}", "/slow", "/boom", "_unmatched"} <= routes
    assert "/items/1" not in routes
    [boom] = [row for row in rows if row["route"] == "/boom"]
    assert "100.0 %" in boom["text"]


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real mcp SDK server under uvicorn, behind observe() with the viewer on."""
    port = free_port()
    argv = [
        str(BIN_DIR / "uvicorn"), "viewer_mcp_app:app", "--app-dir", str(APPS_DIR),
        "--host", LOOPBACK, "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    env = clean_env({"OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "viewer-mcp-e2e"})
    log_path = tmp_path_factory.mktemp("viewer-mcp-server") / "server.log"
    with running(
        argv,
        log_path=log_path,
        env=env,
        ready=http_ready("/metrics", status=200),
        base_url=f"http://{LOOPBACK}:{port}",
    ) as process:
        yield process


def test_the_red_view_shows_mcp_tools_of_a_real_server(
    mcp_server: Any, browser: Any, tmp_path: Path
) -> None:
    import asyncio

    from test_mcp_servers import run_mcp_client

    # The SDK's own client: a tool that succeeds, one isError, one raising, an unknown one.
    asyncio.run(run_mcp_client(mcp_server.base_url + "/mcp", legacy=False, headers=False))
    browser.get(mcp_server.base_url + "/_observe/#red")
    rows = _wait(browser, lambda d: (r := _rows(d, "#mcp-table tbody tr")) and len(r) >= 5 and r)
    browser.save_screenshot(str(tmp_path / "red-mcp.png"))
    by_target = {(row["method"], row["target"]): row["text"] for row in rows}

    assert {("tools/call", t) for t in ("add", "soft_fail", "boom", "_unknown")} <= set(by_target)
    assert "0.0 %" in by_target[("tools/call", "add")]
    assert "100.0 %" in by_target[("tools/call", "boom")]
    assert ("prompts/get", "greet") in by_target
    assert "nope" not in " ".join(t for _, t in by_target)  # a made-up name is no row


def test_logs_filter_by_request_id_and_never_show_the_viewer_itself(
    server: Any, browser: Any, traffic: dict[str, str]
) -> None:
    browser.get(server.base_url + f"/_observe/#logs?request_id={traffic['request_id']}")
    rows = _wait(browser, lambda d: _rows(d, "#log-list tbody tr"))
    everything = httpx.get(server.base_url + "/_observe/api/logs?limit=1000", timeout=5).json()

    assert {traffic["request_id"]} == {row["requestId"] for row in rows}
    assert any("looked up item 1" in row["text"] for row in rows)
    messages = [log["message"] for log in everything["logs"]]
    assert any("GET /items/1" in message for message in messages)  # uvicorn's access log
    assert not any("/_observe" in message for message in messages)
    traces = httpx.get(server.base_url + "/_observe/api/traces", timeout=5).json()["traces"]
    assert not any("_observe" in (t["path"] or "") for t in traces)


def test_a_non_loopback_client_is_refused(server: Any, browser: Any) -> None:
    """Behind a proxy: uvicorn trusts X-Forwarded-For from 127.0.0.1, so the client is remote."""
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"X-Forwarded-For": "203.0.113.7"}}
    )
    try:
        browser.get(server.base_url + "/_observe/")
        body = browser.find_element("tag name", "body").text
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
    direct = httpx.get(
        server.base_url + "/_observe/api/traces",
        headers={"x-forwarded-for": "198.51.100.4"},
        timeout=5,
    )

    assert "refused: client 203.0.113.7 is not allowed" in body
    assert 403 == direct.status_code
    assert "trace-list" not in direct.text
