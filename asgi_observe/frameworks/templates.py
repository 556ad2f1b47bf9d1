"""One spelling for route parameters: `{name}`, whatever the framework wrote.

Starlette and Litestar publish templates with `{item_id}` (their converters already
dropped); Quart's url rules and Django's routes say `<int:item_id>`, and Django's
`re_path` routes are regular expressions. The label rule (docs/metrics.md, "Route
templates") is the brace form for all of them, so one dashboard query fits every
service. A framework has a bounded set of routes, so each distinct rule is converted
once and cached.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Werkzeug's rule syntax, `<converter(arguments):name>`, and Django's `<converter:name>`.
_CONVERTER = re.compile(r"<(?:[A-Za-z_]\w*(?:\([^)]*\))?:)?([A-Za-z_]\w*)>")
# A backslash before punctuation in a regex means the character itself (`\.`, `\-`).
_ESCAPED = re.compile(r"\\([^\w\s])")
_REGEX_END = ("\\Z", "$")


@lru_cache(maxsize=4096)
def brace_template(rule: str) -> str:
    """`/items/<int:item_id>` -> `/items/{item_id}`; a rule without converters unchanged.

    Since 0.1.0
    """
    return _CONVERTER.sub(r"{\1}", rule) if "<" in rule else rule


@lru_cache(maxsize=4096)
def readable_route(route: str) -> str:
    """A route that may hold regular expressions (Django's `re_path`), made readable.

    The rule (docs/frameworks/django.md): the anchors `^` and `$` / `\\Z` go, a named
    group `(?P<year>[0-9]{4})` becomes `{year}`, an unnamed capturing group becomes
    `{0}`, `{1}`... by position (Django passes those as positional arguments), an
    escaped character stands for itself (`\\.` is `.`), and `<int:pk>` becomes `{pk}`.
    Any other regex syntax (non-capturing groups, classes outside groups) stays as
    written; it is still one label per route.

    Since 0.1.0
    """
    text = route.removeprefix("^")
    for end in _REGEX_END:
        if text.endswith(end) and not text.endswith("\\" + end):
            text = text[: -len(end)]
            break
    if "(" in text:
        text = _replace_groups(text)
    if "\\" in text:
        text = _ESCAPED.sub(r"\1", text)
    return brace_template(text)


def _replace_groups(text: str) -> str:
    out: list[str] = []
    position = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            out.append(text[index : index + 2])
            index += 2
            continue
        if char != "(" or (text.startswith("(?", index) and not text.startswith("(?P<", index)):
            out.append(char)
            index += 1
            continue
        end = _group_end(text, index)
        if end is None:  # unbalanced: not a regex we can read, keep the rest as written
            out.append(text[index:])
            break
        if text.startswith("(?P<", index):
            name_end = text.find(">", index)
            out.append("{" + text[index + 4 : name_end] + "}")
        else:
            out.append("{" + str(position) + "}")
            position += 1
        index = end
    return "".join(out)


def _group_end(text: str, start: int) -> int | None:
    """Index just past the parenthesis closing the group opened at `start`."""
    depth = 0
    in_class = False
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return None
