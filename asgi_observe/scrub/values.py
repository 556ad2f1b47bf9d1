"""Pure helpers for scrub.py: a request's secret values, and redaction inside text.

Two kinds of redaction work on text. By value: the secrets seen in one request (header,
cookie, query and body values) are replaced wherever they appear. By name: `name=value`,
`'name': 'value'`, `(b'name', b'value')` and `Name: value` shapes whose name is sensitive
have their value replaced; these are the shapes sentry-sdk's `repr()` of frame variables,
query strings, JSON and form bodies and header dumps take. Nothing here raises on odd text.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

NameTest = Callable[[str], bool]

MIN_SECRET_LENGTH = 6
"""Shorter values are redacted by name only: replacing "dark" or "1" everywhere would
blank out unrelated text."""
MAX_SECRET_LENGTH = 4096
MAX_SECRETS = 512
MAX_BODY_BYTES = 64 * 1024
"""How much of a request body is kept (and parsed on error) to learn its secret values."""
MAX_NAME_LENGTH = 100
_MAX_JSON_DEPTH = 32

_REPR_NAME = re.compile(r"""b?(['"])(.{0,100})\1""", re.DOTALL)  # MAX_NAME_LENGTH
_AUTH_VALUE = re.compile(r"\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s+(\S.*?)\s*", re.DOTALL)

# Quoted strings with their escapes: 'it\'s' or "say \"hi\"".
_QUOTED = r"""(?P<{q}>['"])(?P<{v}>(?:\\.|(?!(?P={q}))[^\\\n])*)(?P={q})"""
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


def plain_name(text: str) -> str:
    """The name inside a repr: sentry-sdk writes frame variables as `b'cookie'`, `'cookie'`."""
    if len(text) > MAX_NAME_LENGTH + 3:
        return text
    match = _REPR_NAME.fullmatch(text)
    return match.group(2) if match else text


def secret_variants(value: str) -> set[str]:
    """The forms a secret value takes in text: as is, its credential, encoded, escaped."""
    found: set[str] = set()
    _add(found, value)
    auth = _AUTH_VALUE.fullmatch(value) if len(value) <= MAX_SECRET_LENGTH else None
    if auth is not None:  # "Bearer <token>", "Basic <base64 user:password>"
        credential = auth.group(2)
        _add(found, credential)
        if auth.group(1).lower() == "basic":
            decoded = _b64decode(credential)
            if decoded is not None:
                _add(found, decoded)
                _add(found, decoded.partition(":")[2])
    for secret in tuple(found):
        _add(found, quote(secret, safe=""))
        _add(found, quote_plus(secret, safe=""))
        _add(found, json.dumps(secret)[1:-1])
        _add(found, repr(secret)[1:-1])
        _add(found, repr(secret.encode("utf-8", "replace"))[2:-1])
    return found


def _add(found: set[str], value: str) -> None:
    value = value.strip()
    if MIN_SECRET_LENGTH <= len(value) <= MAX_SECRET_LENGTH:
        found.add(value)


def _b64decode(text: str) -> str | None:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def header_secrets(headers: Iterable[Any], is_sensitive: NameTest) -> set[str]:
    """Secret values in `(name, value)` header pairs (bytes or str): sensitive headers and
    every cookie value."""
    found: set[str] = set()
    for pair in headers:
        try:
            name, value = pair
        except (TypeError, ValueError):
            continue
        name, value = _text(name).lower(), _text(value)
        if name == "cookie":
            for cookie in cookie_values(value):
                found |= secret_variants(cookie)
        if is_sensitive(name):
            found |= secret_variants(value)
    return found


def cookie_values(header: str) -> list[str]:
    """The values of a `Cookie` header: `a=1; b="2"` -> `["1", "2"]`."""
    values = []
    for part in header.split(";"):
        _, sep, value = part.partition("=")
        if sep:
            values.append(value.strip().strip('"'))
    return values


def query_secrets(query: str, is_sensitive: NameTest) -> set[str]:
    """The values of sensitive parameters in a query string or form body, raw and decoded."""
    found: set[str] = set()
    for part in re.split("[&;]", query):
        name, sep, value = part.partition("=")
        if sep and value and is_sensitive(unquote_plus(name)):
            found |= secret_variants(value)
            found |= secret_variants(unquote_plus(value))
    return found


def body_secrets(body: bytes, is_sensitive: NameTest) -> set[str]:
    """The values of sensitive fields in a JSON or form-encoded body."""
    text = body[:MAX_BODY_BYTES].decode("utf-8", "replace")
    if text.lstrip()[:1] in ("{", "["):
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            return mapping_secrets(document, is_sensitive)
    return query_secrets(text.strip(), is_sensitive)


def mapping_secrets(data: Any, is_sensitive: NameTest) -> set[str]:
    """The values under sensitive keys (or in sensitive `(name, value)` pairs) anywhere in
    nested data; repr quotes (``'x'``, ``b'x'``) are taken off. Cycle-safe."""
    found: set[str] = set()
    _json_secrets(data, is_sensitive, found, 0, under_secret=False, active=set())
    return found


def _json_secrets(
    node: Any,
    is_sensitive: NameTest,
    found: set[str],
    depth: int,
    *,
    under_secret: bool,
    active: set[int],
) -> None:
    if isinstance(node, (str, bytes, bytearray, int, float)) and not isinstance(node, bool):
        if under_secret:
            found |= secret_variants(plain_name(_text(node)))
        return
    if depth > _MAX_JSON_DEPTH or id(node) in active:
        return
    active.add(id(node))
    try:
        if isinstance(node, Mapping):
            for key, value in node.items():
                secret = under_secret or (
                    isinstance(key, (str, bytes)) and is_sensitive(plain_name(_text(key)))
                )
                _json_secrets(
                    value, is_sensitive, found, depth + 1, under_secret=secret, active=active
                )
        elif isinstance(node, (list, tuple)):
            pair = under_secret or (
                len(node) == 2
                and isinstance(node[0], (str, bytes))
                and is_sensitive(plain_name(_text(node[0])))
            )
            for index, value in enumerate(node):
                secret = under_secret or (pair and index == 1)
                _json_secrets(
                    value, is_sensitive, found, depth + 1, under_secret=secret, active=active
                )
    finally:
        active.discard(id(node))


def request_section_secrets(request: Any, is_sensitive: NameTest) -> set[str]:
    """Secret values in a Sentry event's ``request``: headers, cookies, query, data."""
    if not isinstance(request, Mapping):
        return set()
    found: set[str] = set()
    headers = request.get("headers")
    if isinstance(headers, Mapping):
        found |= header_secrets(list(headers.items()), is_sensitive)
    elif isinstance(headers, (list, tuple)):
        found |= header_secrets(headers, is_sensitive)
    cookies = request.get("cookies")
    if isinstance(cookies, Mapping):
        for value in cookies.values():
            found |= secret_variants(_text(value))
    elif isinstance(cookies, str):
        for value in cookie_values(cookies):
            found |= secret_variants(value)
    query = request.get("query_string")
    if isinstance(query, (str, bytes)):
        found |= query_secrets(plain_name(_text(query)), is_sensitive)
    data = request.get("data")
    if isinstance(data, (Mapping, list)):
        found |= mapping_secrets(data, is_sensitive)
    elif isinstance(data, (str, bytes)):
        found |= body_secrets(data.encode() if isinstance(data, str) else data, is_sensitive)
    return found


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return value if isinstance(value, str) else str(value)


class TextRedactor:
    """Replace known secret values, and the values of sensitive names, inside text."""

    __slots__ = ("_is_sensitive", "_replacement", "_values")

    def __init__(self, secrets: Iterable[str], is_sensitive: NameTest, replacement: str) -> None:
        wanted = {s for s in secrets if MIN_SECRET_LENGTH <= len(s) <= MAX_SECRET_LENGTH}
        wanted.discard(replacement)
        # Longest first, so a token is replaced whole before any shorter secret inside it.
        ordered = sorted(wanted, key=lambda s: (-len(s), s))[:MAX_SECRETS]
        self._values = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._is_sensitive = is_sensitive
        self._replacement = replacement

    def values(self, text: str) -> str:
        """Replace every known secret value."""
        if self._values is None:
            return text
        return self._values.sub(self._replacement, text)

    def named(self, text: str) -> str:
        """Replace the values of sensitive names in the shapes listed in the module doc."""
        if "=" not in text and ":" not in text and "," not in text:
            return text
        for shape in _NAMED_SHAPES:
            text = shape.sub(self._replace_match, text)
        return text

    def __call__(self, text: str) -> str:
        return self.named(self.values(text))

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
