"""The event-stream reader: the WHATWG line rules, any chunking, and its memory bound."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_observe.mcp.sse import SseReader

CAP = 1000


def read(*chunks: bytes, cap: int = CAP) -> list[bytes | None]:
    reader = SseReader(cap)
    events: list[bytes | None] = []
    for chunk in chunks:
        events.extend(reader.feed(chunk))
    return events


@pytest.mark.parametrize(
    ("stream", "events"),
    [
        (b"event: message\r\ndata: {}\r\n\r\n", [b"{}"]),
        (b"data: {}\n\n", [b"{}"]),
        (b"data: {}\r\r", [b"{}"]),
        (b"data:{}\n\n", [b"{}"]),
        (b"data: a\ndata: b\n\n", [b"a\nb"]),
        (b": ping\n\ndata: x\n\n", [b"x"]),
        (b"event: endpoint\ndata: /x\n\ndata: y\n\n", [b"y"]),
        (b"id: 1\nretry: 10\ndata: z\n\n", [b"z"]),
        (b"data: unfinished\n", []),
        (b"\n\n\n", []),
    ],
)
def test_events(stream: bytes, events: list[bytes]) -> None:
    assert events == read(stream)


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    assert [b"a", b"b"] == read(b"data: a\r", b"\n\r\ndata: b\r\n\r\n")


def test_an_event_over_the_cap_is_reported_as_none_and_the_next_one_is_read() -> None:
    big = b"data: " + b"x" * (CAP + 1) + b"\n\n"
    assert [None, b"ok"] == read(big + b"data: ok\n\n")


def test_a_10_mb_event_in_chunks_holds_at_most_the_cap() -> None:
    reader = SseReader(CAP)
    events: list[bytes | None] = list(reader.feed(b"event: message\ndata: "))
    for _ in range(160):
        events.extend(reader.feed(b"y" * 65536))
        assert len(reader._line) <= CAP and sum(map(len, reader._data)) <= CAP
    events.extend(reader.feed(b"\n\ndata: after\n\n"))
    assert [None, b"after"] == events


def test_many_data_lines_past_the_cap_are_dropped() -> None:
    assert [None] == read(b"data: 12345678\n" * 200 + b"\n")


def test_a_stream_that_never_ends_keeps_memory_bounded() -> None:
    reader = SseReader(CAP)
    for n in range(20_000):
        reader.feed(b": keepalive\n" if n % 2 else b"event: message\ndata: {}\n\n")
    assert b"" == reader._line and [] == reader._data


@given(
    st.lists(
        st.sampled_from([b"data: a", b"data: bb", b": c", b"event: message", b"event: x", b""]),
        max_size=12,
    ),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.data(),
)
@example([b"data: a", b""], b"\r\n", None)
def test_any_chunking_gives_the_same_events(
    lines: list[bytes], end: bytes, data: st.DataObject | None
) -> None:
    stream = b"".join(line + end for line in lines)
    whole = read(stream)
    if data is None:
        cuts = [len(stream) // 2]
    else:
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert whole == read(*chunks)


@given(st.lists(st.binary(max_size=40), max_size=10))
def test_never_raises(chunks: list[bytes]) -> None:
    read(*chunks, cap=64)
