"""The framework pages in docs/ show the examples' code as it is in examples/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "docs/frameworks/starlette.md": "examples/starlette_app.py",
    "docs/frameworks/litestar.md": "examples/litestar_app.py",
    "docs/frameworks/quart.md": "examples/quart_app.py",
    "docs/frameworks/raw-asgi.md": "examples/raw_asgi_app.py",
    "docs/frameworks/mcp.md": "examples/mcp_server.py",
    "docs/frameworks/django.md": "examples/django_app.py",
}
SNIPPET = re.compile(r"<!-- example: (?P<path>\S+) -->\n```python\n(?P<code>.*?)```", re.DOTALL)


def snippets(page: str) -> list[tuple[str, str]]:
    text = (ROOT / page).read_text(encoding="utf-8")
    return [(match["path"], match["code"]) for match in SNIPPET.finditer(text)]


@pytest.mark.parametrize(("page", "example"), PAGES.items())
def test_every_marked_snippet_is_verbatim_in_its_example(page: str, example: str) -> None:
    found = snippets(page)
    assert len(found) >= 3, page
    source = (ROOT / example).read_text(encoding="utf-8")
    for path, code in found:
        assert example == path, (page, path)
        assert code in source, f"{page}: snippet not found in {example}:\n{code}"


@pytest.mark.parametrize(("page", "example"), PAGES.items())
def test_page_and_example_point_at_each_other(page: str, example: str) -> None:
    module = example.removesuffix(".py").replace("/", ".")
    page_text = (ROOT / page).read_text(encoding="utf-8")
    assert f"uvicorn {module}:app" in page_text
    assert f"](../../{example})" in page_text
    source = (ROOT / example).read_text(encoding="utf-8")
    assert f"uvicorn {module}:app" in source
    assert page in source


def test_a_changed_example_breaks_its_snippet() -> None:
    """The check can fail: a snippet that drifted from the example is not found."""
    path, code = snippets("docs/frameworks/starlette.md")[0]
    source = (ROOT / path).read_text(encoding="utf-8")
    assert code.replace("asgi_observe", "asgi_observed") not in source
