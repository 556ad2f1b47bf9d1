"""Every example, served by a real ASGI server on 127.0.0.1, observed from the outside.

Spans arrive at a local OTLP/HTTP receiver, the downstream call at a local echo server,
log lines on the server's stdout/stderr, metrics on its /metrics endpoint.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from e2e_harness import (
    LOOPBACK,
    Collector,
    ExportedSpan,
    Process,
    app_env,
    asgi_server_argv,
    free_port,
    http_ready,
    running,
    wait_until,
)
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e

SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3
STATUS_CODE_ERROR = 2
DURATION_COUNT = "http_server_request_duration_seconds_count"
WAIT_S = 15.0


@dataclass(frozen=True)
class Example:
    module: str
    item_route: str  # the template of the route with a path parameter, as the framework writes it
    page: str  # its docs page, whose "span claims" table this file checks
    # The app marks /health/startup started in its own lifespan startup, which a server
    # without lifespan (daphne) never runs: that probe then rightly stays 503.
    own_startup: bool = False


EXAMPLES = {
    "starlette": Example(
        "examples.starlette_app",
        "/items/{item_id}",
        "docs/frameworks/starlette.md",
        own_startup=True,
    ),
    "litestar": Example(
        "examples.litestar_app",
        "/items/{item_id}",
        "docs/frameworks/litestar.md",
        own_startup=True,
    ),
    "quart": Example("examples.quart_app", "/items/{item_id}", "docs/frameworks/quart.md"),
    "raw_asgi": Example("examples.raw_asgi_app", "/items/{item_id}", "docs/frameworks/raw-asgi.md"),
    "django": Example("examples.django_app", "/items/{item_id}", "docs/frameworks/django.md"),
}
SERVED = [
    ("starlette", "uvicorn"),
    ("litestar", "uvicorn"),
    ("quart", "uvicorn"),
    ("raw_asgi", "uvicorn"),
    ("django", "uvicorn"),
    ("starlette", "hypercorn"),
    ("quart", "hypercorn"),
    ("starlette", "granian"),
    ("django", "granian"),
    ("litestar", "granian"),
    ("starlette", "daphne"),
    ("django", "daphne"),
    ("quart", "daphne"),
]


@dataclass
class Served:
    name: str
    server: str
    example: Example
    process: Process
    service_name: str
    client: httpx.Client

    def get(self, path: str, **headers: str) -> httpx.Response:
        return self.client.get(path, headers=headers)


@pytest.fixture(scope="module", params=SERVED, ids=[f"{e}-{s}" for e, s in SERVED])
def served(
    request: pytest.FixtureRequest,
    otlp_receiver: Collector,
    echo_server: Collector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    name, server = request.param
    example = EXAMPLES[name]
    port = free_port()
    service_name = f"{name}-{server}-{secrets.token_hex(4)}"
    env = app_env(otlp_receiver, echo_server, OTEL_SERVICE_NAME=service_name)
    log_path = tmp_path_factory.mktemp(f"{name}-{server}") / "server.log"
    with (
        running(
            asgi_server_argv(server, f"{example.module}:app", port),
            log_path=log_path,
            env=env,
            base_url=f"http://{LOOPBACK}:{port}",
            ready=http_ready("/health/live", status=200),
        ) as process,
        # A new connection per request: servers close a connection after an app raised,
        # and a pooled connection would race that close.
        httpx.Client(
            base_url=process.base_url,
            timeout=10.0,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client,
    ):
        yield Served(f"{name}-{server}", server, example, process, service_name, client)


# --- helpers ---------------------------------------------------------------------------------


def new_trace() -> tuple[str, str, str]:
    """(trace id, parent span id, traceparent header) of a fresh sampled remote parent."""
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent_id, f"00-{trace_id}-{parent_id}-01"


def spans_of(collector: Collector, served: Served, trace_id: str) -> list[ExportedSpan]:
    spans: list[ExportedSpan] = collector.recorder.snapshot()
    return [s for s in spans if s.service_name == served.service_name and s.trace_id == trace_id]


def server_span(collector: Collector, served: Served, trace_id: str) -> ExportedSpan:
    def probe() -> ExportedSpan | None:
        found = [s for s in spans_of(collector, served, trace_id) if s.kind == SPAN_KIND_SERVER]
        return found[0] if found else None

    return wait_until(probe, timeout=WAIT_S, what=f"the SERVER span of trace {trace_id}")


def duration_counts(served: Served) -> dict[tuple[str, str, str], float]:
    """(method, route, status) -> request count, from the example's /metrics."""
    response = served.get("/metrics")
    assert 200 == response.status_code
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == DURATION_COUNT:
                labels = sample.labels
                key = (
                    labels["http_request_method"],
                    labels["http_route"],
                    labels["http_response_status_code"],
                )
                counts[key] = counts.get(key, 0.0) + sample.value
    return counts


# --- tracing -----------------------------------------------------------------------------------


def test_inbound_traceparent_is_continued_by_the_server_span(
    served: Served, otlp_receiver: Collector
) -> None:
    trace_id, parent_id, traceparent = new_trace()
    response = served.get("/items/42", traceparent=traceparent)
    assert 200 == response.status_code
    assert 42 == response.json()["item_id"]
    span = server_span(otlp_receiver, served, trace_id)
    assert parent_id == span.parent_span_id
    assert served.example.item_route == span.attributes.get("http.route")
    assert 200 == span.attributes.get("http.response.status_code")
    assert "GET" == span.attributes.get("http.request.method")


def test_downstream_call_carries_traceparent_and_baggage(
    served: Served, otlp_receiver: Collector, echo_server: Collector
) -> None:
    trace_id, parent_id, traceparent = new_trace()
    response = served.get("/downstream", traceparent=traceparent, baggage="tenant=acme,plan=gold")
    assert 200 == response.status_code
    assert 200 == response.json()["downstream_status"]

    (call,) = echo_server.recorder.wait_for(
        lambda call: trace_id in call["headers"].get("traceparent", ""), timeout=WAIT_S
    )
    version, sent_trace_id, sent_parent_id, flags = call["headers"]["traceparent"].split("-")
    assert ("00", trace_id, "01") == (version, sent_trace_id, flags)
    baggage = {
        member.split("=", 1)[0].strip(): member.split("=", 1)[1].strip()
        for member in call["headers"].get("baggage", "").split(",")
        if "=" in member
    }
    assert {"tenant": "acme", "plan": "gold"} == baggage

    # The downstream's parent is the handler's CLIENT span, a child of the SERVER span,
    # itself a child of the caller's span.
    server = server_span(otlp_receiver, served, trace_id)
    assert parent_id == server.parent_span_id

    def client_span() -> ExportedSpan | None:
        for span in spans_of(otlp_receiver, served, trace_id):
            if span.span_id == sent_parent_id:
                return span
        return None

    client = wait_until(client_span, timeout=WAIT_S, what="the CLIENT span")
    assert SPAN_KIND_CLIENT == client.kind
    assert server.span_id == client.parent_span_id


def test_raising_route_answers_500_with_an_error_span(
    served: Served, otlp_receiver: Collector
) -> None:
    trace_id, _parent_id, traceparent = new_trace()
    response = served.get("/boom", traceparent=traceparent)
    assert 500 == response.status_code
    assert response.headers.get("x-request-id")
    span = server_span(otlp_receiver, served, trace_id)
    assert STATUS_CODE_ERROR == span.status_code
    assert "/boom" == span.attributes.get("http.route")
    assert 500 == span.attributes.get("http.response.status_code")
    assert "RuntimeError" == span.attributes["error.type"]


ROOT = Path(__file__).resolve().parents[2]
CLAIMS = re.compile(r"<!-- span claims: (?P<example>\S+) -->\n(?P<table>(?:\|.*\|\n)+)")
NONE = "—"


def documented_span_claims(page: str) -> tuple[str, list[dict[str, str]]]:
    """(example path, rows) of the page's span-claims table, cells without backquotes."""
    match = CLAIMS.search((ROOT / page).read_text(encoding="utf-8"))
    assert match is not None, f"{page} has no span claims table"
    lines = match["table"].splitlines()
    header = [cell.strip().strip("`") for cell in lines[0].strip("|").split("|")]
    rows = [
        dict(
            zip(
                header,
                (cell.strip().strip("`") for cell in line.strip("|").split("|")),
                strict=True,
            )
        )
        for line in lines[2:]
    ]
    return match["example"], rows


def test_the_span_claims_table_is_parsed() -> None:
    """The parser can fail: every page has the table, with the columns checked below."""
    for example in EXAMPLES.values():
        path, rows = documented_span_claims(example.page)
        assert example.module.replace(".", "/") + ".py" == path
        assert {"GET /items/42", "GET /boom", "GET /nope"} == {row["request"] for row in rows}
        assert "RuntimeError" == next(r for r in rows if r["request"] == "GET /boom")["error.type"]


def test_documented_span_claims_hold(served: Served, otlp_receiver: Collector) -> None:
    """What docs/frameworks/<page>.md says each example request's span looks like."""
    _, rows = documented_span_claims(served.example.page)
    for row in rows:
        method, path = row["request"].split(" ", 1)
        trace_id, _parent_id, traceparent = new_trace()
        response = served.client.request(method, path, headers={"traceparent": traceparent})
        span = server_span(otlp_receiver, served, trace_id)
        expected = {
            "status": row["http.response.status_code"],
            "http.route": row["http.route"],
            "span status": row["span status"],
            "error.type": row["error.type"],
            "exception event": row["exception event"],
        }
        status = span.attributes.get("http.response.status_code")
        actual = {
            "status": NONE if status is None else str(status),
            "http.route": span.attributes.get("http.route", NONE),
            "span status": "error" if span.status_code == STATUS_CODE_ERROR else "unset",
            "error.type": span.attributes.get("error.type", NONE),
            "exception event": ",".join(span.exception_types) or NONE,
        }
        assert expected == actual, (served.name, row["request"], response.status_code)


# --- request ids -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/items/7", 200),
        ("/stream", 200),
        ("/downstream", 200),
        ("/boom", 500),
        ("/nope", 404),
        # served in front of the layers, still with an id
        ("/metrics", 200),
        ("/health/live", 200),
    ],
)
def test_every_response_carries_a_request_id(served: Served, path: str, status: int) -> None:
    first = served.get(path)
    second = served.get(path)
    assert (status, status) == (first.status_code, second.status_code)
    first_id, second_id = first.headers.get("x-request-id"), second.headers.get("x-request-id")
    assert first_id and second_id
    assert first_id != second_id


def test_an_inbound_request_id_is_echoed(served: Served) -> None:
    request_id = f"e2e-{secrets.token_hex(8)}"
    assert request_id == served.get("/boom", **{"X-Request-ID": request_id}).headers.get(
        "x-request-id"
    )
    assert request_id == served.get("/items/1", **{"X-Request-ID": request_id}).headers.get(
        "x-request-id"
    )


# --- streaming ---------------------------------------------------------------------------------


def test_streaming_response_arrives_whole_and_is_traced(
    served: Served, otlp_receiver: Collector
) -> None:
    trace_id, parent_id, traceparent = new_trace()
    with served.client.stream("GET", "/stream", headers={"traceparent": traceparent}) as response:
        chunks = list(response.iter_bytes())
    assert 200 == response.status_code
    assert "".join(f"line {n}\n" for n in range(5)) == b"".join(chunks).decode()
    span = server_span(otlp_receiver, served, trace_id)
    assert parent_id == span.parent_span_id
    assert "/stream" == span.attributes.get("http.route")


# --- metrics -----------------------------------------------------------------------------------


def test_metrics_count_requests_by_route_template_and_status(served: Served) -> None:
    before = duration_counts(served)
    for path in ("/items/1", "/items/2", "/items/3", "/boom", "/boom"):
        served.get(path)
    after = duration_counts(served)

    def delta(key: tuple[str, str, str]) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert 3.0 == delta(("GET", served.example.item_route, "200"))
    assert 2.0 == delta(("GET", "/boom", "500"))
    routes = {route for _method, route, _status in after}
    assert not {"/items/1", "/items/2", "/items/3"} & routes, routes


def test_metrics_expose_the_histogram_buckets_and_active_requests(served: Served) -> None:
    served.get("/items/5")
    text = served.get("/metrics").text
    buckets = {
        sample.labels["le"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_server_request_duration_seconds_bucket"
    }
    expected = [
        ".005",
        ".01",
        ".025",
        ".05",
        ".075",
        ".1",
        ".25",
        ".5",
        ".75",
        "1",
        "2.5",
        "5",
        "7.5",
        "10",
    ]
    assert {float(b) for b in expected} | {float("inf")} == {float(b) for b in buckets}
    assert "# TYPE http_server_active_requests gauge" in text


# --- logs --------------------------------------------------------------------------------------


def test_log_lines_carry_request_and_trace_ids(served: Served, otlp_receiver: Collector) -> None:
    trace_id, _parent_id, traceparent = new_trace()
    request_id = f"logs-{secrets.token_hex(8)}"
    response = served.get("/downstream", traceparent=traceparent, **{"X-Request-ID": request_id})
    assert 200 == response.status_code
    server = server_span(otlp_receiver, served, trace_id)

    def app_lines() -> list[dict[str, object]] | None:
        lines = [
            line
            for line in served.process.json_lines()
            if line.get("message") in ("calling downstream", "downstream answered")
            and line.get("request_id") == request_id
        ]
        return lines if len(lines) == 2 else None

    lines = wait_until(app_lines, timeout=WAIT_S, what="the handler's two JSON log lines")
    for line in lines:
        assert (request_id, trace_id, server.span_id) == (
            line["request_id"],
            line["trace_id"],
            line["span_id"],
        )


def test_log_lines_of_the_raising_route_carry_the_request_id(served: Served) -> None:
    request_id = f"boom-{secrets.token_hex(8)}"
    assert 500 == served.get("/boom", **{"X-Request-ID": request_id}).status_code

    def lines() -> list[dict[str, object]] | None:
        found = [
            line for line in served.process.json_lines() if line.get("request_id") == request_id
        ]
        return found or None

    found = wait_until(lines, timeout=WAIT_S, what="a log line of the failing request")
    assert all(line.get("trace_id") for line in found)


# --- health ------------------------------------------------------------------------------------


def test_health_probes_answer(served: Served) -> None:
    assert 200 == served.get("/health/live").status_code
    never_started = served.example.own_startup and served.server == "daphne"
    assert (503 if never_started else 200) == served.get("/health/startup").status_code
    ready = served.get("/health/ready")
    assert 200 == ready.status_code
    assert "healthy" == ready.json()["status"]
    assert "pass" == ready.json()["checks"]["downstream"]["status"]


def test_server_output_has_no_unexpected_tracebacks(served: Served) -> None:
    """The only traceback the server may print is the deliberate error of /boom."""
    served.get("/boom")
    chunks = served.process.output().split("Traceback (most recent call last)")[1:]
    assert chunks, "the /boom error was not logged"
    for chunk in chunks:
        assert "RuntimeError: something broke" in chunk, chunk[:4000]
