"""Parse and format the W3C ``baggage`` header.

https://www.w3.org/TR/baggage/#header-content
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, cast
from urllib.parse import quote

from asgi_observe.propagation._log import log_invalid

__all__ = ["BaggageMember", "format_baggage", "parse_baggage"]

# "at least 64 list-members" and "at least 8192 bytes" must be propagated; we
# propagate exactly that much, dropping whole members (#limits).
MAX_BAGGAGE_MEMBERS = 64
MAX_BAGGAGE_BYTES = 8192
# Combined input is cut to this many bytes, at a member boundary, before any work.
MAX_BAGGAGE_INPUT = 4 * MAX_BAGGAGE_BYTES

# key = token (RFC 7230 section 3.2.6 tchar).
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
_OCTET = bytes(c for c in range(0x21, 0x7F) if c not in b'",;\\')
_TCHAR_STR = frozenset(_TCHAR.decode())
_OCTET_STR = frozenset(_OCTET.decode())
# Outbound values keep every baggage-octet but "%", which must be escaped so
# that the receiver's percent-decoding gives back the same text.
_SAFE = _OCTET.decode().replace("%", "")
_OWS = b" \t"
_HEXDIGITS = b"0123456789abcdefABCDEF"
_BYTE_OF_HEX2 = {
    bytes((a, b)): bytes.fromhex(chr(a) + chr(b)) for a in _HEXDIGITS for b in _HEXDIGITS
}


class BaggageMember(NamedTuple):
    """One baggage list-member.

    ``value`` is percent-decoded text; ``properties`` is the raw text after the
    first ``;`` with surrounding whitespace removed (``''`` when there is none).

    Since 0.1.0.
    """

    key: str
    value: str
    properties: str


# tuple.__new__ skips the NamedTuple's Python-level __new__ on the hot path.
_new_member = cast(
    "Callable[[type[BaggageMember], tuple[str, str, str]], BaggageMember]", tuple.__new__
)


def parse_baggage(values: Sequence[bytes]) -> list[BaggageMember]:
    """Parse every ``baggage`` header line of one request, combined in order.

    An invalid member is dropped alone. At most 64 members and 8192 bytes are
    kept, in order, by dropping whole members. Never raises on wire input.

    Since 0.1.0.
    """
    if not values:
        return []
    data = values[0] if len(values) == 1 else b",".join(values)
    if len(data) > MAX_BAGGAGE_INPUT:
        log_invalid("baggage (too long, cut)", data)
        cut = data.rfind(b",", 0, MAX_BAGGAGE_INPUT + 1)
        data = data[:cut] if cut > 0 else b""
    members: list[BaggageMember] = []
    total = -1  # the first member needs no comma
    for item in data.split(b","):
        raw = item.strip(_OWS)
        if not raw:
            continue
        size = len(raw) + 1
        if total + size > MAX_BAGGAGE_BYTES:
            continue
        # list-member = key OWS "=" OWS value *( OWS ";" OWS property ); a key never
        # holds "=" or ";" but a value may hold "=" (#value): split at the first "=".
        # (Inlined rather than a helper: this loop is the hot path.)
        key, eq, value = raw.partition(b"=")
        props = b""
        if b";" in value:
            value, _, props = value.partition(b";")
            props = props.strip(_OWS)
            if not _valid_properties(props):
                log_invalid("baggage member", raw)
                continue
        key = key.rstrip(_OWS)
        value = value.strip(_OWS)
        # isalnum() is a cheap exact answer for the common case; translate() decides the rest.
        if (
            not eq
            or not key
            or not (key.isalnum() or not key.translate(None, _TCHAR))
            or not (value.isalnum() or not value.translate(None, _OCTET))
        ):
            log_invalid("baggage member", raw)
            continue
        text = _percent_decode(value) if b"%" in value else value.decode("ascii")
        members.append(_new_member(BaggageMember, (key.decode(), text, props.decode())))
        total += size
        if len(members) == MAX_BAGGAGE_MEMBERS:
            break
    return members


def _percent_decode(value: bytes) -> str:
    # RFC 3986 percent-decoding: "+" stays a plus, an escape that is not two hex
    # digits stays literal, and bytes that are not UTF-8 become U+FFFD (#value).
    first, *rest = value.split(b"%")
    out = [first]
    for part in rest:
        byte = _BYTE_OF_HEX2.get(part[:2])
        if byte is None:
            out.append(b"%")
            out.append(part)
        else:
            out.append(byte)
            out.append(part[2:])
    return b"".join(out).decode("utf-8", "replace")


def _valid_properties(props: bytes) -> bool:
    # property = key OWS "=" OWS value / key OWS
    for prop in props.split(b";"):
        key, eq, value = prop.partition(b"=")
        key = key.strip(_OWS)
        if not key or not (key.isalnum() or not key.translate(None, _TCHAR)):
            return False
        value = value.strip(_OWS)
        if eq and not (value.isalnum() or not value.translate(None, _OCTET)):
            return False
    return True


def _valid_properties_str(props: str) -> bool:
    return props.isascii() and _valid_properties(props.encode("ascii"))


def format_baggage(members: Iterable[BaggageMember]) -> str:
    """Format members as a ``baggage`` value.

    Values are percent-encoded as UTF-8 where they are not baggage-octets (and
    ``%`` itself); properties are emitted as given. A member with an invalid key
    or properties is dropped; at most 64 members and 8192 bytes are emitted.

    Since 0.1.0.
    """
    parts: list[str] = []
    total = -1
    for key, value, props in members:
        # str.isalnum() accepts non-ASCII letters, hence isascii() in the fast paths.
        if not (key.isascii() and key.isalnum()) and not (key and _TCHAR_STR.issuperset(key)):
            continue
        if props and not _valid_properties_str(props):
            continue
        if (value.isascii() and value.isalnum()) or (
            _OCTET_STR.issuperset(value) and "%" not in value
        ):
            encoded = value
        else:
            encoded = quote(value, safe=_SAFE, errors="surrogatepass")
        item = f"{key}={encoded};{props}" if props else f"{key}={encoded}"
        size = len(item) + 1
        if total + size > MAX_BAGGAGE_BYTES:
            continue
        total += size
        parts.append(item)
        if len(parts) == MAX_BAGGAGE_MEMBERS:
            break
    return ",".join(parts)
