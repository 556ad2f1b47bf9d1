"""The JSON-RPC reader: what it keeps of each message kind, and that no input makes it raise."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_observe.mcp.jsonrpc import (
    ERROR,
    INVALID,
    MAX_BATCH_MESSAGES,
    MAX_TEXT_LENGTH,
    NOTIFICATION,
    REQUEST,
    RESULT,
    id_token,
    parse_messages,
    quick_outcome,
    quick_request,
)


def one(data: bytes):  # type: ignore[no-untyped-def]
    [message] = parse_messages(data)
    return message


def test_a_tools_call_request_gives_method_name_id_and_meta() -> None:
    message = one(
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add",'
        b'"arguments":{},"_meta":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-'
        b'b7ad6b7169203331-01","io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}'
    )
    assert (REQUEST, 3, "tools/call", "add") == (
        message.kind,
        message.id,
        message.method,
        message.name,
    )
    assert "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" == message.meta_traceparent
    assert "2026-07-28" == message.protocol_version


def test_initialize_gives_the_requested_protocol_version() -> None:
    message = one(
        b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}'
    )
    assert "2025-11-25" == message.protocol_version


def test_a_notification_has_no_id() -> None:
    message = one(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    assert (NOTIFICATION, None) == (message.kind, message.id)


@pytest.mark.parametrize(
    ("body", "kind", "is_error", "code"),
    [
        (b'{"jsonrpc":"2.0","id":"a","result":{"isError":true}}', RESULT, True, None),
        (b'{"jsonrpc":"2.0","id":"a","result":{"isError":false}}', RESULT, False, None),
        (b'{"jsonrpc":"2.0","id":"a","result":{"isError":"true"}}', RESULT, False, None),
        (b'{"jsonrpc":"2.0","id":"a","result":{}}', RESULT, False, None),
        (b'{"jsonrpc":"2.0","id":"a","error":{"code":-32602,"message":"x"}}', ERROR, False, -32602),
        (
            b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}',
            ERROR,
            False,
            -32700,
        ),
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":"x"}}', ERROR, False, None),
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":true}}', ERROR, False, None),
    ],
)
def test_answers(body: bytes, kind: str, is_error: bool, code: int | None) -> None:
    message = one(body)
    assert (kind, is_error, code) == (message.kind, message.is_error, message.error_code)


def test_list_answers_give_the_published_names() -> None:
    tools = one(
        b'{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"},{"name":7},"x",{"name":"b"}]}}'
    )
    prompts = one(b'{"jsonrpc":"2.0","id":2,"result":{"prompts":[{"name":"p"}]}}')
    assert (["a", "b"], ["p"]) == (tools.listed_tools, prompts.listed_prompts)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="malformed JSON"),
        pytest.param(b'{"hello": "world"}', id="JSON that is not JSON-RPC"),
        pytest.param(b'{"jsonrpc":"1.0","id":1,"method":"ping"}', id="another version"),
        pytest.param(b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', id="object id"),
        pytest.param(b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', id="array id"),
        pytest.param(b'{"jsonrpc":"2.0","id":true,"method":"ping"}', id="boolean id"),
        pytest.param(b'{"jsonrpc":"2.0","id":null,"method":"ping"}', id="null id on a request"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":5}', id="method not a string"),
        pytest.param(b'{"jsonrpc":"2.0","id":1}', id="neither method nor answer"),
        pytest.param(b'{"jsonrpc":"2.0","result":{}}', id="answer without id"),
        pytest.param(b"[]", id="empty batch"),
        pytest.param(b'"just a string"', id="a JSON string"),
        pytest.param(b"\xff\xfe{}", id="invalid UTF-8"),
        pytest.param(b'{"jsonrpc":"2.0","method":"\xc3("}', id="invalid UTF-8 inside a string"),
        pytest.param(b"[" * 200_000 + b"]" * 200_000, id="recursion bomb"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="object recursion bomb"),
    ],
)
def test_bad_input_is_one_invalid_message(body: bytes) -> None:
    assert [INVALID] == [message.kind for message in parse_messages(body)]


def test_a_batch_is_read_up_to_its_limit() -> None:
    batch = json.dumps(
        [{"jsonrpc": "2.0", "id": n, "method": "ping"} for n in range(10_000)]
    ).encode()
    messages = parse_messages(batch)
    assert MAX_BATCH_MESSAGES == len(messages)
    assert list(range(MAX_BATCH_MESSAGES)) == [message.id for message in messages]


def test_a_batch_mixes_kinds() -> None:
    batch = b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"n"},{"x":1}]'
    assert [REQUEST, NOTIFICATION, INVALID] == [m.kind for m in parse_messages(batch)]


def test_long_texts_are_cut() -> None:
    long = "x" * 10_000
    message = one(
        json.dumps(
            {"jsonrpc": "2.0", "id": long, "method": long, "params": {"name": long}}
        ).encode()
    )
    assert {MAX_TEXT_LENGTH} == {len(message.id), len(message.method), len(message.name)}


@given(st.binary(max_size=300))
def test_never_raises_on_bytes(data: bytes) -> None:
    parse_messages(data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    [
        "jsonrpc",
        "id",
        "method",
        "params",
        "result",
        "error",
        "name",
        "_meta",
        "tools",
        "isError",
        "code",
    ]
)
_shaped = st.dictionaries(_keys, _json | st.just("2.0"), max_size=6)


@given(st.one_of(_shaped, st.lists(_shaped, max_size=4), _json))
def test_never_raises_on_json_shaped_like_json_rpc(document: object) -> None:
    for message in parse_messages(json.dumps(document).encode()):
        assert message.kind in {REQUEST, NOTIFICATION, RESULT, ERROR, INVALID}


@pytest.mark.parametrize(
    ("data", "outcome"),
    [
        (b'{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}', ""),
        (b'{"jsonrpc":"2.0","id":1,"result":{"isError" : true}}', "tool_error"),
        (b'{"jsonrpc":"2.0","id":1,"result":{"content":[]}}', None),
        (b'{"jsonrpc":"2.0","id":1,"result":{"text":"\\"isError\\": true","isError":false}}', ""),
        (b'{"jsonrpc":"2.0","id":1,"result":{"isError":false,"x":{"isError":true}}}', None),
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":-1}}', None),
        (b'{"jsonrpc":"2.0","id":1,"result":{"text":"error","isError":false}}', ""),
        (b'{"jsonrpc":"2.0","method":"notifications/message","params":{"result":1}}', None),
        (b'{"jsonrpc":"2.0","id":1,"result":{"is\\u0045rror":true}}', None),
        (b'[{"jsonrpc":"2.0","id":1,"result":{}}]', None),
        (b'{"jsonrpc":"2.0","id":1,"result":{"isError":"yes"}}', None),
        (b'{"jsonrpc":"2.0","id":2,"result":{}}', None),
        (b'{"jsonrpc":"2.0","id":{"a":1},"result":{}}', None),
        (b'{"id": 1, "jsonrpc": "2.0", "result": {"isError": false}}', None),
        (b'{"id": 1, "result": {"isError": false}}', None),
        (b'{"result":{},"jsonrpc":"2.0","id":1}', None),
    ],
)
def test_quick_outcome_agrees_with_the_parse_or_defers_to_it(
    data: bytes, outcome: str | None
) -> None:
    assert outcome == quick_outcome(data, b"1")
    if outcome is not None:
        [message] = parse_messages(data)
        assert (outcome == "tool_error") == message.is_error


@given(st.one_of(_shaped, st.lists(_shaped, max_size=3)), st.booleans())
def test_quick_outcome_never_contradicts_the_parse(document: object, spaced: bool) -> None:
    data = json.dumps(document, separators=(", ", ": ") if spaced else (",", ":")).encode()
    for tool_call in (True, False):
        outcome = quick_outcome(data, None, tool_call)
        if outcome is not None:
            [message] = parse_messages(data)
            assert RESULT == message.kind
            if tool_call:
                assert (outcome == "tool_error") == message.is_error


_ids = st.integers(-(10**20), 10**20) | st.text(max_size=300) | st.floats(allow_nan=False)
_request_params = st.fixed_dictionaries(
    {"name": st.text(max_size=5)},
    optional={
        "arguments": st.dictionaries(st.sampled_from(["traceparent", "a"]), _json, max_size=2),
        "_meta": st.dictionaries(
            st.sampled_from(["traceparent", "tracestate", "x"]), st.text(max_size=60), max_size=3
        ),
    },
)


@given(_ids, _request_params, st.booleans())
def test_quick_request_agrees_with_the_parse_or_defers_to_it(
    message_id: object, params: dict[str, object], spaced: bool
) -> None:
    document = {"jsonrpc": "2.0", "id": message_id, "method": "tools/call", "params": params}
    data = json.dumps(document, separators=(", ", ": ") if spaced else (",", ":")).encode()
    quick = quick_request(data)
    if quick is None:
        return
    [message] = parse_messages(data)
    read_id, token, traceparent, tracestate = quick
    assert (message.id, message.meta_traceparent) == (read_id, traceparent)
    if traceparent is not None:  # a tracestate counts only beside its traceparent
        assert message.meta_tracestate == tracestate
    # The token stands for the id in an answer, as the server writes it back.
    answer = json.dumps({"jsonrpc": "2.0", "id": message_id, "result": {"isError": False}})
    assert "" == quick_outcome(answer.replace(" ", "").encode(), token)


@given(_ids, _ids)
def test_an_id_token_matches_only_an_answer_to_that_id(asked: object, answered: object) -> None:
    token = id_token(asked)  # type: ignore[arg-type]
    answer = json.dumps({"jsonrpc": "2.0", "id": answered, "result": {}}).encode()
    outcome = quick_outcome(answer, token, tool_call=False)
    if outcome is not None:
        assert token != b""
        [message] = parse_messages(answer)
        assert message.id == asked


def test_an_id_token_is_unmatchable_for_ids_a_token_cannot_stand_for() -> None:
    assert [b"", b"", b""] == [id_token(1.5), id_token('a"b'), id_token("x" * MAX_TEXT_LENGTH)]
    assert [b"7", b'"a"'] == [id_token(7), id_token("a")]
