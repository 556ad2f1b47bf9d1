"""The measured() examples of docs/metrics.md and docs/logs.md run as written."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(?P<code>.*?)```", re.DOTALL)


class PaymentDeclined(Exception):
    pass


async def charge(order: dict[str, Any]) -> None:
    if order.get("declined"):
        raise PaymentDeclined("card declined")


async def search(query: str) -> dict[str, Any]:
    if not query:
        raise ValueError("empty query, api_key=sk-live-123456")
    return {"hits": 1}


def examples(page: str) -> list[str]:
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return [m.group("code") for m in BLOCK.finditer(text) if "measured(" in m.group("code")]


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> CollectorRegistry:
    # The examples use the default registry; each test gets a fresh one in its place.
    fresh = CollectorRegistry()
    monkeypatch.setattr(prometheus_client, "REGISTRY", fresh)
    return fresh


@pytest.mark.parametrize("page", ["metrics.md", "logs.md"])
async def test_the_order_and_tool_examples_record_what_the_page_says(
    page: str, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    order_code, tool_code = examples(page)
    names: dict[str, Any] = {"PaymentDeclined": PaymentDeclined, "charge": charge}
    exec(compile(order_code, page, "exec"), names)
    tool_names: dict[str, Any] = {"TOOLS": {"search": search}}
    exec(compile(tool_code, page, "exec"), tool_names)
    process_order, call_tool = names["process_order"], tool_names["call_tool"]

    with caplog.at_level(logging.INFO):
        if page == "logs.md":
            assert "accepted" == await process_order({"id": 1, "items": [1]}, channel="app")
            with pytest.raises(PaymentDeclined):
                await process_order({"id": 2, "declined": True})
        else:
            assert "accepted" == await process_order({"items": [1]}, channel="app")
            with pytest.raises(ValueError):
                await process_order({})
        assert {"hits": 1} == await call_tool("search", {"query": "shoes"})
        with pytest.raises(ValueError):
            await call_tool("search", {"query": ""})

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert 1.0 == value("orders_processed_calls_total", channel="app", outcome="success")
    assert 1.0 == value("orders_processed_calls_total", channel="web", outcome="error")
    assert 1.0 == value("tool_calls_calls_total", tool_name="search", outcome="success")
    assert 1.0 == value("tool_calls_errors_total", tool_name="search", error_type="ValueError")
