"""An `ErrorReport` as Telegram HTML, Slack mrkdwn, Discord markdown or plain text.

A message is first laid out as lines of styled pieces, then rendered with the markup's
escaping. When it is over a destination's limit, the raw text of the longest cuttable piece
(the traceback, then the message) is shortened and the message rendered again, so a cut
never falls inside a tag or an entity and the result always fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from asgi_observe.errors.notify.report import ErrorReport

__all__ = ["MARKUPS", "layout", "render", "utf16_length"]

_ICONS = {"debug": "⚪", "info": "🔵", "warning": "🟠", "error": "🔴", "critical": "🔥"}
_CUT = "…"
# Look-alikes for the characters that cannot be escaped inside code spans or bold text.
_BACKTICK = "\u02cb"
_ASTERISK = "\u2217"
_MAX_FIELD = 300  # characters of a one-line field (type, route, ids) before any limit


@dataclass
class Piece:
    style: str  # "text", "bold", "code", "pre" or "link"
    text: str
    url: str = ""
    cuttable: bool = False


Line = list[Piece]


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as Telegram and Discord count message length."""
    return len(text.encode("utf-16-le")) // 2


def layout(report: ErrorReport) -> list[Line]:
    """The message as lines of pieces, before any markup."""
    lines: list[Line] = [_headline(report)]
    if report.message:
        lines.append([Piece("code", report.message, cuttable=True)])
    where = " ".join(part for part in (report.method, report.route) if part)
    if where or report.status is not None:
        line = [Piece("text", _short(where))] if where else []
        if report.status is not None:
            line.append(Piece("text", f"{' → ' if where else 'status '}{report.status}"))
        lines.append(line)
    if report.request_id:
        lines.append([Piece("text", "request id: "), Piece("code", _short(report.request_id))])
    if report.trace_id:
        trace = Piece("code", report.trace_id)
        if report.trace_url:
            trace = Piece("link", report.trace_id, url=report.trace_url)
        lines.append([Piece("text", "trace: "), trace])
    if report.repeats and report.kind not in ("repeats", "suppressed"):
        repeats = f"+{report.repeats} repeats suppressed since the last message"
        lines.append([Piece("text", repeats)])
    lines.extend(
        [Piece("text", f"{_short(key)}: "), Piece("code", _short(value))]
        for key, value in report.context
    )
    if report.frames:
        text = "\n".join(
            f'File "{f.filename}", line {f.lineno}, in {f.function}'
            + (f"\n  {f.line}" if f.line else "")
            for f in report.frames
        )
        lines.append([Piece("pre", text, cuttable=True)])
    return lines


def _headline(report: ErrorReport) -> Line:
    icon = _ICONS.get(report.level, "🔴")
    where = " ".join(part for part in (report.service, _env(report)) if part)
    if report.kind == "repeats":
        return [
            Piece("text", "🔁 "),
            Piece("bold", _short(report.title)),
            Piece("text", f" repeated {report.repeats} more times in {where}"),
        ]
    if report.kind == "suppressed":
        return [Piece("bold", f"⏸ {report.title}"), Piece("text", f" in {where}")]
    if report.kind == "test":
        return [Piece("text", "✅ "), Piece("bold", report.title), Piece("text", f" from {where}")]
    return [
        Piece("text", f"{icon} "),
        Piece("bold", _short(report.title)),
        Piece("text", f" in {where}"),
    ]


def _env(report: ErrorReport) -> str:
    parts = [part for part in (report.environment, report.release) if part]
    return f"({', '.join(parts)})" if parts else ""


def _short(text: str) -> str:
    return text if len(text) <= _MAX_FIELD else text[: _MAX_FIELD - 1] + _CUT


# --- markups ---------------------------------------------------------------------------


def _html(text: str) -> str:
    # Telegram: "All <, > and & symbols that are not a part of a tag or an HTML entity must
    # be replaced with the corresponding HTML entities" (Bot API, "HTML style").
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _telegram(piece: Piece) -> str:
    text = _html(piece.text)
    if piece.style == "bold":
        return f"<b>{text}</b>"
    if piece.style == "code":
        return f"<code>{text}</code>"
    if piece.style == "pre":
        return f"<pre>{text}</pre>"
    if piece.style == "link":
        return f'<a href="{_html(piece.url).replace(chr(34), "&quot;")}">{text}</a>'
    return text


def _slack_escape(text: str) -> str:
    # Slack: &, < and > are control characters and must be HTML entities in text.
    return _html(text)


def _slack(piece: Piece) -> str:
    if piece.style in ("code", "pre"):
        text = _slack_escape(piece.text.replace("`", _BACKTICK))
        return f"```{text}```" if piece.style == "pre" else f"`{text}`"
    if piece.style == "bold":
        return f"*{_slack_escape(piece.text.replace('*', _ASTERISK))}*"
    if piece.style == "link":
        url = piece.url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
        return f"<{url}|{_slack_escape(piece.text.replace('|', '¦'))}>"
    return _slack_escape(piece.text)


_DISCORD_SPECIAL = frozenset("\\*_~`|<>[]()#")


def _discord_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in _DISCORD_SPECIAL else c for c in text)


def _discord(piece: Piece) -> str:
    if piece.style in ("code", "pre"):
        text = piece.text.replace("`", _BACKTICK)  # a backtick cannot be escaped inside code
        return f"```\n{text}\n```" if piece.style == "pre" else f"`{text}`"
    if piece.style == "bold":
        return f"**{_discord_escape(piece.text)}**"
    if piece.style == "link":
        url = piece.url.replace(")", "%29").replace(" ", "%20")
        return f"[{_discord_escape(piece.text)}]({url})"
    return _discord_escape(piece.text)


def _plain(piece: Piece) -> str:
    return piece.text


MARKUPS: dict[str, Callable[[Piece], str]] = {
    "telegram": _telegram,
    "slack": _slack,
    "discord": _discord,
    "plain": _plain,
}


def render(report: ErrorReport, markup: str, limit: int) -> str:
    """`report` in `markup`, at most `limit` UTF-16 code units long, cut cleanly if needed."""
    style = MARKUPS[markup]
    lines = layout(report)
    text = _join(lines, style)
    if utf16_length(text) <= limit:
        return text
    cuttable = [piece for line in lines for piece in line if piece.cuttable]
    originals = [piece.text for piece in cuttable]
    for piece in cuttable:
        piece.text = _CUT
    room = limit - utf16_length(_join(lines, style))
    # Fair shares, smallest need first: what a short message leaves goes to the traceback.
    needs = sorted(
        range(len(cuttable)),
        key=lambda i: utf16_length(style(Piece(cuttable[i].style, originals[i]))),
    )
    for position, index in enumerate(needs):
        piece = cuttable[index]
        floor = utf16_length(style(piece))
        share = max(room, 0) // (len(needs) - position) + floor
        piece.text = _fit(piece, originals[index], share, style)
        room -= utf16_length(style(piece)) - floor
    text = _join(lines, style)
    while utf16_length(text) > limit and len(lines) > 1:
        lines.pop()  # only when the fixed lines alone are over the limit
        text = _join(lines, style)
    if utf16_length(text) <= limit:
        return text
    return _cut_units(_join(lines, _plain), limit)  # a headline alone over the limit


def _fit(piece: Piece, text: str, budget: int, style: Callable[[Piece], str]) -> str:
    """The longest cut of `text` whose rendering fits `budget`: the start of a message,
    the end of a traceback (its innermost frames)."""

    def cut(keep: int) -> str:
        if keep >= len(text):
            return text
        if piece.style == "pre":
            return _CUT + text[len(text) - keep :] if keep else _CUT
        return text[:keep] + _CUT

    def size(keep: int) -> int:
        return utf16_length(style(Piece(piece.style, cut(keep), piece.url)))

    if size(len(text)) <= budget:
        return text
    low, high = 0, len(text)  # size(low) fits (or nothing does), size(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if size(middle) <= budget:
            low = middle
        else:
            high = middle
    return cut(low)


def _join(lines: list[Line], style: Callable[[Piece], str]) -> str:
    return "\n".join("".join(style(piece) for piece in line) for line in lines)


def _cut_units(text: str, limit: int) -> str:
    out = []
    used = 0
    for char in text:
        size = 2 if ord(char) > 0xFFFF else 1
        if used + size > limit - 1:
            out.append(_CUT)
            break
        out.append(char)
        used += size
    return "".join(out)
