"""A one-file Django project for the in-process tests (settings are per process)."""

from __future__ import annotations

import logging

import django
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.http import require_POST

logger = logging.getLogger("tests.django_site")


async def item(request: HttpRequest, item_id: int) -> JsonResponse:
    if item_id == 0:
        raise Http404("no item 0")
    return JsonResponse({"item_id": item_id})


def sync_order(request: HttpRequest, user_id: int, order: str, **prefix: str) -> JsonResponse:
    logger.info("sync view ran")  # in a worker thread
    return JsonResponse({"user_id": user_id, "order": order})


def archive(request: HttpRequest, year: str, month: str, **prefix: str) -> HttpResponse:
    return HttpResponse(f"{year}-{month}")


def positional(request: HttpRequest, slug: str, **prefix: str) -> HttpResponse:
    return HttpResponse(slug)


async def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("django async view broke")


def sync_boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("django sync view broke")


@require_POST
def only_post(request: HttpRequest) -> HttpResponse:
    return HttpResponse("posted")


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("home")


v2_patterns = [path("orders/<slug:order>", sync_order)]
api_patterns = [
    path("users/<int:user_id>/", include(v2_patterns)),
    re_path(r"^archive/(?P<year>[0-9]{4})/(?P<month>[0-9]{2})/$", archive),
    re_path(r"^files/([\w-]+)\.txt$", positional),
]

urlpatterns = [
    path("", home),
    path("items/<int:item_id>", item),
    path("api/<str:version>/", include(api_patterns)),
    re_path(r"^legacy/", include(api_patterns)),
    path("boom", boom),
    path("sync-boom", sync_boom),
    path("only-post", only_post),
]

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="tests-only",
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        LOGGING_CONFIG=None,
    )
    django.setup()
