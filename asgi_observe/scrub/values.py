"""Pure helpers for scrubber.py: a request's secret values, and redaction inside text.

Two kinds of redaction work on text. By value: the secrets seen in one request (header,
cookie, query and body values) are replaced wherever they appear, by plain substring
search over a capped `SecretSet`, so the work is linear in the text and in the number of
secrets whatever a client sends (issue 13: an alternation regex built from hundreds of
prefix-sharing cookies stalled the event loop for seconds). By name: `name=value`,
`'name': 'value'`, `'name': [...]`, `(b'name', b'value')` and `Name: value` shapes whose
name is sensitive have their value replaced; these are the shapes sentry-sdk's `repr()`
of frame variables, query strings, JSON and form bodies and header dumps take. URL
userinfo is replaced too. Nothing here raises on odd text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from asgi_observe.scrub.secrets import (
    AUTH,
    MAX_SECRETS,
    MIN_SECRET_LENGTH,
    NAMED,
    NO_DEADLINE,
    OTHER,
    Deadline,
    SecretSet,
    secret_variants,
)
from asgi_observe.scrub.urls import redact_userinfo

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_SECRETS",
    "MIN_SECRET_LENGTH",
    "SecretSet",
    "TextRedactor",
    "body_secrets",
    "cookie_values",
    "header_secrets",
    "mapping_secrets",
    "plain_name",
    "query_secrets",
    "request_section_secrets",
    "secret_variants",
]

NameTest = Callable[[str], bool]

MAX_BODY_BYTES = 64 * 1024
"""How much of a request body is kept (and parsed on error) to learn its secret values."""
MAX_NAME_LENGTH = 100
_MAX_DEPTH = 64

_REPR_NAME = re.compile(r"""b?(['"])(.{0,100})\1""", re.DOTALL)  # MAX_NAME_LENGTH

# Quoted strings with their escapes: 'it\'s' or "say \"hi\"".
# The lookahead makes the scan atomic (no possessive quantifiers before Python 3.11): a
# quote that never closes costs one pass to the end of the line, not a backtracking one.
_QUOTED = r"""(?P<{q}>['"])(?=(?P<{v}>(?:\\.|(?!(?P={q}))[^\\\n])*))(?P={v})(?P={q})"""
_NAME = r"[A-Za-z_][\w.\-\[\]%]{0,99}"
# token=abc  password='x'  (query strings, form bodies, cookie headers, kwargs reprs)
_ASSIGN = re.compile(
    r"(?<![\w.\-\[\]%])(?P<name>" + _NAME + r")(?P<sep>[ \t]?=[ \t]?)"
    r"""(?:""" + _QUOTED.format(q="vq", v="qvalue") + r"""|(?P<value>[^\s&;'",)}\]>]+))"""
)
# 'authorization': 'Bearer x'  "password": "x"  b'token': b'x'  "pin": 1234  (dict reprs, JSON)
_MAPPING = re.compile(
    r"""b?(?P<nq>['"])(?P<name>(?:(?!(?P=nq))[^\\\n]){1,100})(?P=nq)[ \t]*:[ \t]*"""
    r"(?:b?" + _QUOTED.format(q="vq", v="qvalue") + r"|(?P<value>-?\d[\d.eE+-]*))"
)
# (b'authorization', b'Bearer x')  ['cookie', 'a=b']  (header pairs, werkzeug Headers repr)
_PAIR = re.compile(
    r"""[(\[][ \t]*b?(?P<nq>['"])(?P<name>(?:(?!(?P=nq))[^\\\n]){1,100})(?P=nq)[ \t]*,[ \t]*"""
    r"b?" + _QUOTED.format(q="vq", v="qvalue")
)
# Authorization: Bearer x   (a header block at the start of a line)
_HEADER_LINE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{0,99})[ \t]*:[ \t]*(?P<value>[^\r\n]+)", re.MULTILINE
)
_NAMED_SHAPES = (_ASSIGN, _MAPPING, _PAIR, _HEADER_LINE)
# 'password': ['a', 'b']  token={...}  (containers sentry-sdk wrote as one repr string past
# its depth limit): the brackets stay, their content goes.
_CONTAINER_HEAD = re.compile(
    r"""b?(?P<nq>['"])(?P<name>(?:(?!(?P=nq))[^\\\n]){1,100})(?P=nq)[ \t]*:[ \t]*(?=[\[{(])"""
    r"|(?<![\w.\-\[\]%])(?P<aname>" + _NAME + r")[ \t]?=[ \t]?(?=[\[{(])"
)
_BRACKET_TOKEN = re.compile(r"""[\[\]{}()]|(['"])(?=((?:\\.|(?!\1)[^\\\n])*))\2\1""")
_OPENING = frozenset("[{(")


def plain_name(text: str) -> str:
    """The name inside a repr: sentry-sdk writes frame variables as `b'cookie'`, `'cookie'`."""
    if len(text) > MAX_NAME_LENGTH + 3:
        return text
    match = _REPR_NAME.fullmatch(text)
    return match.group(2) if match else text


def header_secrets(headers: Iterable[Any], is_sensitive: NameTest, into: SecretSet) -> None:
    """Secret values in `(name, value)` header pairs (bytes or str): sensitive headers
    (ranked `AUTH`) and every cookie value (ranked `OTHER`)."""
    for pair in headers:
        try:
            name, value = pair
        except (TypeError, ValueError):
            continue
        name = _text(name).strip().lower()
        if name == "cookie":
            _cookie_secrets(value, into)
            continue
        if is_sensitive(name):
            if isinstance(value, (bytes, bytearray)):
                into.add_bytes(bytes(value), AUTH)
            else:
                into.add(_text(value), AUTH)


def _cookie_secrets(value: Any, into: SecretSet) -> None:
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        into.add_bytes(raw, OTHER)
        for part in raw.split(b";"):
            _, sep, raw_cookie = part.partition(b"=")
            if sep:
                into.add_bytes(raw_cookie.strip().strip(b'"'), OTHER)
        return
    text = _text(value)
    into.add(text, OTHER)
    for cookie in cookie_values(text):
        into.add(cookie, OTHER)


def cookie_values(header: str) -> list[str]:
    """The values of a `Cookie` header: `a=1; b="2"` -> `["1", "2"]`."""
    values = []
    for part in header.split(";"):
        _, sep, value = part.partition("=")
        if sep:
            values.append(value.strip().strip('"'))
    return values


def query_secrets(query: str, is_sensitive: NameTest, into: SecretSet) -> None:
    """The values of sensitive parameters in a query string or form body, raw and decoded.

    Split on ``&`` only, as the frameworks, `redact_query_string` and the WHATWG URL
    standard do: in ``token=ab;cd`` the whole ``ab;cd`` is the token.
    """
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if sep and value and is_sensitive(unquote_plus(name)):
            into.add(value, NAMED)
            into.add(unquote_plus(value), NAMED)


def body_secrets(
    body: bytes, is_sensitive: NameTest, into: SecretSet, deadline: Deadline = NO_DEADLINE
) -> None:
    """The values of sensitive fields in a JSON or form-encoded body.

    A JSON body cut at `MAX_BODY_BYTES` does not parse: its prefix is scanned token by
    token instead, so the fields it holds are still learned.
    """
    text = body[:MAX_BODY_BYTES].decode("utf-8", "replace")
    if text.lstrip()[:1] in ("{", "["):
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            json_prefix_secrets(text, is_sensitive, into, deadline)
        else:
            mapping_secrets(document, is_sensitive, into, deadline)
        return
    query_secrets(text.strip(), is_sensitive, into)


# One JSON token: a string (closed or not), a structural character, or a bare scalar.
_JSON_TOKEN = re.compile(r'"(?=((?:[^"\\]|\\.)*))\1"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def json_prefix_secrets(
    text: str, is_sensitive: NameTest, into: SecretSet, deadline: Deadline = NO_DEADLINE
) -> None:
    """The values under sensitive keys in JSON text that may be cut off anywhere.

    One linear pass over the tokens, keeping a stack of (is object, under a sensitive
    name) and the last key; an unterminated string at the end is ignored.
    """
    stack: list[tuple[bool, bool]] = []
    key: str | None = None
    expect_key = False
    for count, match in enumerate(_JSON_TOKEN.finditer(text)):
        if count & 1023 == 1023:
            deadline.check()
        token = match.group(0)
        in_object, under = stack[-1] if stack else (False, False)
        if token in ("{", "["):
            sensitive = under or (in_object and key is not None and is_sensitive(key))
            stack.append((token == "{", sensitive))
            expect_key, key = token == "{", None
        elif token in ("}", "]"):
            if stack:
                stack.pop()
            expect_key, key = False, None
        elif token == ":":
            expect_key = False
        elif token == ",":
            expect_key, key = in_object, None if in_object else key
        elif in_object and expect_key:
            key = _json_string(token)
        elif under or (in_object and key is not None and is_sensitive(key)):
            value = _json_string(token) if token.startswith('"') else token
            if value is not None:
                into.add(value, NAMED)


def _json_string(token: str) -> str | None:
    try:
        value = json.loads(token)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def mapping_secrets(
    data: Any, is_sensitive: NameTest, into: SecretSet, deadline: Deadline = NO_DEADLINE
) -> None:
    """The values under sensitive keys (or in sensitive `(name, value)` pairs) anywhere in
    nested data, ranked `NAMED`; repr quotes (``'x'``, ``b'x'``) are taken off. Cycle-safe."""
    _json_secrets(data, is_sensitive, into, deadline, 0, under_secret=False, active=set())


def _json_secrets(
    node: Any,
    is_sensitive: NameTest,
    into: SecretSet,
    deadline: Deadline,
    depth: int,
    *,
    under_secret: bool,
    active: set[int],
) -> None:
    if isinstance(node, (str, bytes, bytearray, int, float)) and not isinstance(node, bool):
        if under_secret:
            if isinstance(node, (bytes, bytearray)):
                into.add_bytes(bytes(node), NAMED)
            into.add(plain_name(_text(node)), NAMED)
        return
    if depth > _MAX_DEPTH or id(node) in active:
        return
    deadline.check()
    active.add(id(node))
    try:
        if isinstance(node, Mapping):
            for key, value in node.items():
                secret = under_secret or (
                    isinstance(key, (str, bytes)) and is_sensitive(plain_name(_text(key)))
                )
                _json_secrets(
                    value, is_sensitive, into, deadline, depth + 1, under_secret=secret,
                    active=active,
                )  # fmt: skip
        elif isinstance(node, (list, tuple, set, frozenset)):
            items = list(node)
            pair = under_secret or (
                len(items) == 2
                and isinstance(items[0], (str, bytes))
                and is_sensitive(plain_name(_text(items[0])))
            )
            for index, value in enumerate(items):
                secret = under_secret or (pair and index == 1)
                _json_secrets(
                    value, is_sensitive, into, deadline, depth + 1, under_secret=secret,
                    active=active,
                )  # fmt: skip
    finally:
        active.discard(id(node))


def request_section_secrets(
    request: Any, is_sensitive: NameTest, into: SecretSet, deadline: Deadline = NO_DEADLINE
) -> None:
    """Secret values in a Sentry event's ``request``: headers, cookies, query, data."""
    if not isinstance(request, Mapping):
        return
    headers = request.get("headers")
    if isinstance(headers, Mapping):
        header_secrets(list(headers.items()), is_sensitive, into)
    elif isinstance(headers, (list, tuple)):
        header_secrets(headers, is_sensitive, into)
    cookies = request.get("cookies")
    if isinstance(cookies, Mapping):
        for value in cookies.values():
            into.add(_text(value), OTHER)
    elif isinstance(cookies, str):
        for value in cookie_values(cookies):
            into.add(value, OTHER)
    query = request.get("query_string")
    if isinstance(query, (str, bytes)):
        query_secrets(plain_name(_text(query)), is_sensitive, into)
    data = request.get("data")
    if isinstance(data, (Mapping, list)):
        mapping_secrets(data, is_sensitive, into, deadline)
    elif isinstance(data, (str, bytes)):
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
        body_secrets(raw, is_sensitive, into, deadline)


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return value if isinstance(value, str) else str(value)


_CACHED_TEXT_LENGTH = 1024  # longer texts are often repeated (the same body in every frame)
_MAX_CACHED_TEXTS = 64


class TextRedactor:
    """Replace known secret values, and the values of sensitive names, inside text.

    By value: plain substring search for each of at most `MAX_SECRETS` secret forms
    (best ranked first), matches merged, so the cost is linear in the text length times
    the number of secrets, with no backtracking whatever the secrets look like.
    """

    __slots__ = ("_cache", "_deadline", "_is_sensitive", "_replacement", "_secrets")

    def __init__(
        self,
        secrets: SecretSet | Iterable[str],
        is_sensitive: NameTest,
        replacement: str,
        deadline: Deadline = NO_DEADLINE,
    ) -> None:
        if not isinstance(secrets, SecretSet):
            secrets = SecretSet(value for value in secrets if isinstance(value, str))
        self._secrets = [s for s in secrets.ranked(MAX_SECRETS) if s != replacement]
        self._is_sensitive = is_sensitive
        self._replacement = replacement
        self._deadline = deadline
        self._cache: dict[str, str] = {}

    def narrow(self, blob: str) -> None:
        """Keep only the secrets that occur somewhere in `blob` (all of an event's text),
        so each piece of text is then searched for those alone."""
        if not self._secrets:
            return
        kept = []
        for secret in self._secrets:
            self._deadline.check()
            if secret in blob:
                kept.append(secret)
        self._secrets = kept

    def values(self, text: str) -> str:
        """Replace every known secret value."""
        if not self._secrets or len(text) < MIN_SECRET_LENGTH:
            return text
        long_text = len(text) > _CACHED_TEXT_LENGTH
        if long_text:
            cached = self._cache.get(text)
            if cached is not None:
                return cached
        self._deadline.check()
        spans: list[tuple[int, int]] = []
        for secret in self._secrets:
            start = text.find(secret)
            while start >= 0:
                end = start + len(secret)
                spans.append((start, end))
                start = text.find(secret, end)
        result = _replace_spans(text, spans, self._replacement) if spans else text
        if long_text:
            if len(self._cache) >= _MAX_CACHED_TEXTS:
                self._cache.clear()
            self._cache[text] = result
        return result

    def named(self, text: str) -> str:
        """Replace the values of sensitive names in the shapes listed in the module doc,
        and URL userinfo."""
        if "://" in text:
            text = redact_userinfo(text, self._replacement)
        if "=" not in text and ":" not in text and "," not in text:
            return text
        if "[" in text or "{" in text or "(" in text:
            text = self._containers(text)
        for shape in _NAMED_SHAPES:
            text = shape.sub(self._replace_match, text)
        return text

    def __call__(self, text: str) -> str:
        return self.named(self.values(text))

    def code(self, text: str) -> str:
        """For source lines: known values and URL userinfo only, so that
        ``password = form["password"]`` stays readable."""
        text = self.values(text)
        return redact_userinfo(text, self._replacement) if "://" in text else text

    def _containers(self, text: str) -> str:
        parts: list[str] = []
        done = 0
        position = 0
        while True:
            match = _CONTAINER_HEAD.search(text, position)
            if match is None:
                break
            name = match.group("name") or match.group("aname")
            opening = match.end()
            if not self._is_sensitive(name) or text.startswith(self._replacement, opening):
                position = opening + 1
                continue
            closing = _container_end(text, opening)
            parts.append(text[done : opening + 1])
            parts.append(self._replacement)
            done = position = max(closing - 1, opening + 1)
        if not parts:
            return text
        parts.append(text[done:])
        return "".join(parts)

    def _replace_match(self, match: re.Match[str]) -> str:
        if not self._is_sensitive(match.group("name")):
            return match.group(0)
        group = "qvalue" if "qvalue" in match.re.groupindex and match.group("qvalue") else "value"
        if match.group(group) is None:
            return match.group(0)
        start, end = match.span(group)
        if match.string.startswith(self._replacement, start):  # already redacted by value
            return match.group(0)
        whole_start = match.start()
        text = match.group(0)
        return text[: start - whole_start] + self._replacement + text[end - whole_start :]


def _container_end(text: str, opening: int) -> int:
    """The index after the bracket closing the one at `opening` (quotes respected), or
    the end of the text when it never closes (a repr cut by truncation)."""
    depth = 0
    for match in _BRACKET_TOKEN.finditer(text, opening):
        token = match.group(0)
        if token in _OPENING:
            depth += 1
        elif len(token) == 1 and token in "]})":
            depth -= 1
            if depth == 0:
                return match.end()
    return len(text) + 1


def _replace_spans(text: str, spans: list[tuple[int, int]], replacement: str) -> str:
    spans.sort()
    parts: list[str] = []
    done = 0
    current_start, current_end = spans[0]
    for start, end in spans[1:]:
        if start <= current_end:  # overlapping or touching: one replacement
            current_end = max(current_end, end)
            continue
        parts.append(text[done:current_start])
        parts.append(replacement)
        done = current_end
        current_start, current_end = start, end
    parts.append(text[done:current_start])
    parts.append(replacement)
    parts.append(text[current_end:])
    return "".join(parts)
