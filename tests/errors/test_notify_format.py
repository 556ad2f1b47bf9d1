"""Message formatting: escaping per markup, clean cuts at each destination's limit."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from asgi_observe.errors.notify.destinations import DISCORD_LIMIT, TELEGRAM_LIMIT
from asgi_observe.errors.notify.formatting import render, utf16_length
from asgi_observe.errors.notify.report import ErrorReport, Frame

TELEGRAM_TAGS = {"b", "code", "pre", "a"}


class TelegramHtml(HTMLParser):
    """Parses what Telegram's HTML parse mode would: tags, entities and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append(tag)
        self.tags.append(tag)
        self.hrefs += [value or "" for name, value in attrs if name == "href"]

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_telegram(text: str) -> TelegramHtml:
    parser = TelegramHtml()
    parser.feed(text)
    parser.close()
    assert [] == parser.stack, "unclosed tags"
    assert set(parser.tags) <= TELEGRAM_TAGS
    return parser


def report(**changes: object) -> ErrorReport:
    base: dict[str, object] = {
        "kind": "exception",
        "title": "ValueError",
        "message": "bad input",
        "service": "checkout",
        "environment": "prod",
        "release": "1.2.3",
        "method": "GET",
        "route": "/orders/{order_id}",
        "status": 500,
        "request_id": "req-1",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "trace_url": "https://tempo.example/trace/4bf92f3577b34da6a3ce929d0e0e4736?a=1&b=2",
        "frames": (Frame("app/orders.py", 12, "get_order", "return 1 / 0"),),
    }
    base.update(changes)
    return ErrorReport(**base)  # type: ignore[arg-type]


NASTY = "x < y && z > 0 \"quoted\" 'single' </code><b>bold</b> &amp; *star* _u_ `tick` @everyone"


def test_telegram_html_escapes_every_text_and_keeps_only_its_own_tags() -> None:
    text = render(report(message=NASTY, title="Err<T>", route="/a&b/{id}"), "telegram", 4096)
    parsed = parse_telegram(text)
    shown = "".join(parsed.text)
    assert NASTY in shown
    assert "Err<T>" in shown and "/a&b/{id}" in shown
    assert ["b", "code"] == parsed.tags[:2]  # the headline's type, then the message
    assert ["https://tempo.example/trace/4bf92f3577b34da6a3ce929d0e0e4736?a=1&b=2"] == parsed.hrefs


def test_slack_escapes_its_three_control_characters_only() -> None:
    text = render(report(message=NASTY), "slack", 3900)
    assert "x &lt; y &amp;&amp; z &gt; 0" in text
    assert "<" not in text.replace("<https://tempo.example/", "").replace("|4bf92f", "")
    assert "&quot;" not in text and '"quoted"' in text


def test_discord_escapes_markdown_outside_code_and_code_keeps_no_backtick() -> None:
    text = render(report(title="my_error*type", message="a `b` c"), "discord", DISCORD_LIMIT)
    assert "**my\\_error\\*type**" in text
    assert "`a \u02cbb\u02cb c`" in text


def test_message_parts_in_documented_order() -> None:
    lines = render(report(repeats=3, context=(("order", "42"),)), "plain", 4096).splitlines()
    assert [
        "🔴 ValueError in checkout (prod, 1.2.3)",
        "bad input",
        "GET /orders/{order_id} → 500",
        "request id: req-1",
        "trace: 4bf92f3577b34da6a3ce929d0e0e4736",
        "+3 repeats suppressed since the last message",
        "order: 42",
        'File "app/orders.py", line 12, in get_order',
        "  return 1 / 0",
    ] == lines


@pytest.mark.parametrize(
    ("kind", "repeats", "headline"),
    [
        ("repeats", 999, "🔁 ValueError repeated 999 more times in checkout (prod, 1.2.3)"),
        ("suppressed", 30, "⏸ 30 more errors suppressed in checkout (prod, 1.2.3)"),
    ],
)
def test_summary_headlines(kind: str, repeats: int, headline: str) -> None:
    title = "30 more errors suppressed" if kind == "suppressed" else "ValueError"
    text = render(report(kind=kind, title=title, repeats=repeats), "plain", 4096)
    assert headline == text.splitlines()[0]


def long_report(message: str, frames: int) -> ErrorReport:
    return report(
        message=message,
        frames=tuple(
            Frame(f"app/deep_{i}.py", i, f"level_{i}", "x = '<&>' * 2") for i in range(frames)
        ),
    )


def test_a_long_telegram_message_is_cut_at_4096_and_keeps_the_innermost_frame() -> None:
    text = render(long_report("&" * 10_000, 400), "telegram", TELEGRAM_LIMIT)
    assert TELEGRAM_LIMIT >= utf16_length(text) > TELEGRAM_LIMIT - 200
    parsed = parse_telegram(text)
    shown = "".join(parsed.text)
    assert "…" in shown
    assert 'File "app/deep_399.py", line 399, in level_399' in shown
    assert "🔴 ValueError in checkout" in shown


@settings(deadline=None, max_examples=60)  # big inputs, on a shared machine
@given(
    message=st.text(max_size=6000),
    title=st.text(min_size=1, max_size=400),
    frames=st.integers(0, 60),
)
@example(message="😀" * 5000, title="E", frames=50)
@example(message="<" * 5000, title="&" * 400, frames=0)
def test_every_markup_fits_its_limit_and_telegram_html_stays_valid(
    message: str, title: str, frames: int
) -> None:
    value = long_report(message, frames)
    value = ErrorReport(**{**value.__dict__, "title": title})
    for markup, limit in (("telegram", TELEGRAM_LIMIT), ("slack", 3900), ("discord", 2000)):
        text = render(value, markup, limit)
        assert utf16_length(text) <= limit
    parse_telegram(render(value, "telegram", TELEGRAM_LIMIT))


def test_the_example_in_the_docs_is_what_a_report_renders_to() -> None:
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"
    documented = page.read_text(encoding="utf-8").split("```text\n", 1)[1].split("```", 1)[0]
    shown = report(
        title="RuntimeError",
        message="payment <42> & co failed: [Filtered] [Filtered]",
        environment="production",
        release="1.4.2",
        method="POST",
        request_id="7f0c3d8e9a1b4c2d",
        repeats=12,
        context=(("order", "42"),),
        frames=(
            Frame(
                "app/payments.py",
                88,
                "charge",
                'raise RuntimeError(f"payment <{order}> & co failed: {auth} {password}")',
            ),
        ),
    )
    assert documented.rstrip("\n") == render(shown, "plain", 4096)
