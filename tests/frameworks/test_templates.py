"""The one spelling of route parameters, {name}, from every framework's syntax."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_observe.frameworks.templates import brace_template, readable_route


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("/items/<int:item_id>", "/items/{item_id}"),
        ("/bp/<org>/members/<member>", "/bp/{org}/members/{member}"),
        ("/conv/<int(min=1):n>/<path:rest>", "/conv/{n}/{rest}"),
        ("/any/<any(a, b):kind>", "/any/{kind}"),
        ("/plain", "/plain"),
        ("/items/{item_id}", "/items/{item_id}"),
        ("", ""),
    ],
)
def test_converter_syntax_becomes_braces(rule: str, expected: str) -> None:
    assert expected == brace_template(rule)


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        # Django path() routes
        ("items/<int:item_id>", "items/{item_id}"),
        ("api/<str:version>/users/<int:user_id>/", "api/{version}/users/{user_id}/"),
        ("", ""),
        # re_path: anchors, named and unnamed groups, escapes
        (r"^archive/(?P<year>[0-9]{4})/$", "archive/{year}/"),
        (r"^archive/(?P<year>[0-9]{4})/(?P<month>[0-9]{2})/\Z", "archive/{year}/{month}/"),
        (r"^files/([\w-]+)\.txt$", "files/{0}.txt"),
        (r"^pair/(\d+)-(\d+)/$", "pair/{0}-{1}/"),
        (r"^nested/(?P<slug>(?:a|b)+)/$", "nested/{slug}/"),
        (r"^class/(?P<c>[()]+)/$", "class/{c}/"),
        # include(): Django joins the prefix's regex with the route below
        (r"^legacy/archive/(?P<year>[0-9]{4})/$", "legacy/archive/{year}/"),
        (r"^legacy/users/<int:user_id>/", "legacy/users/{user_id}/"),
        # what is left of a regex stays as written
        (r"^opt/?$", "opt/?"),
        (r"^(?:en|fr)/about/$", "(?:en|fr)/about/"),
        (r"^price\$$", "price$"),
        (r"^broken/(unclosed", "broken/(unclosed"),
    ],
)
def test_django_routes_are_made_readable(route: str, expected: str) -> None:
    assert expected == readable_route(route)


@given(st.text(max_size=60))
def test_readable_route_never_raises(route: str) -> None:
    assert isinstance(readable_route(route), str)


@given(st.from_regex(re.compile(r"[a-z/]{0,10}"), fullmatch=True))
def test_a_route_without_syntax_is_unchanged(route: str) -> None:
    assert route == readable_route(route) == brace_template(route)
