"""Notification settings: variables and arguments, validated at startup, naming the culprit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgi_driver import plain_app
from chat_receiver import TOKEN
from notify_helpers import clean_globals

from asgi_observe import observe
from asgi_observe.errors.notify import (
    DiscordDestination,
    NotifyMiddleware,
    SlackDestination,
    TelegramDestination,
    WebhookDestination,
    configure_notifications,
    get_notifier,
)
from asgi_observe.errors.notify.settings import read_notify_settings
from asgi_observe.setup.config import validate_environment

SECRET_VARIABLES = {
    "ASGI_OBSERVE_TELEGRAM_BOT_TOKEN",
    "ASGI_OBSERVE_SLACK_WEBHOOK_URL",
    "ASGI_OBSERVE_DISCORD_WEBHOOK_URL",
    "ASGI_OBSERVE_NOTIFY_WEBHOOK_URL",
}
TELEGRAM = {"ASGI_OBSERVE_TELEGRAM_BOT_TOKEN": TOKEN, "ASGI_OBSERVE_TELEGRAM_CHAT_IDS": "42"}


@pytest.fixture(autouse=True)
def _globals() -> Iterator[None]:
    with clean_globals():
        yield


def test_nothing_set_means_no_destination() -> None:
    settings = read_notify_settings({})
    assert (False, []) == (settings.configured, settings.destinations())
    assert None is configure_notifications(environ={})


def test_every_variable_is_read() -> None:
    settings = read_notify_settings(
        {
            **TELEGRAM,
            "ASGI_OBSERVE_TELEGRAM_CHAT_IDS": "-1001234567890, @ops_room:17, -1001234567890",
            "ASGI_OBSERVE_TELEGRAM_API_URL": "http://127.0.0.1:9",
            "ASGI_OBSERVE_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X",
            "ASGI_OBSERVE_DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/a",
            "ASGI_OBSERVE_NOTIFY_WEBHOOK_URL": "https://alerts.example/in,https://b.example/in",
            "ASGI_OBSERVE_NOTIFY_ON": "exceptions, 5xx,LOGS",
            "ASGI_OBSERVE_NOTIFY_DEDUP_MINUTES": "2.5",
            "ASGI_OBSERVE_NOTIFY_RATE_LIMIT": "7",
            "ASGI_OBSERVE_NOTIFY_TIMEOUT": "1.5",
            "ASGI_OBSERVE_TRACE_URL": "https://tempo.example/trace/{trace_id}",
            "OTEL_SERVICE_NAME": "billing",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=staging,service.version=9.1",
        }
    )
    options = settings.options
    assert ((-1001234567890, None), ("@ops_room", 17)) == settings.telegram_chats
    assert [
        "telegram chat -1001234567890",
        "telegram chat @ops_room topic 17",
        "slack webhook (hooks.slack.com)",
        "discord webhook (discord.com)",
        "webhook (alerts.example)",
        "webhook (b.example)",
    ] == [d.label for d in settings.destinations()]
    assert (frozenset({"exceptions", "5xx", "logs"}), 150.0, 7, 1.5) == (
        options.events,
        options.dedup_window,
        options.rate_limit,
        options.timeout,
    )
    identity = options.identity
    assert ("billing", "staging", "9.1", "https://tempo.example/trace/{trace_id}") == (
        identity.service,
        identity.environment,
        identity.release,
        identity.trace_url,
    )


def test_arguments_win_over_variables() -> None:
    settings = read_notify_settings(
        {**TELEGRAM, "ASGI_OBSERVE_NOTIFY_RATE_LIMIT": "7", "SENTRY_ENVIRONMENT": "prod"},
        telegram_chat_ids=[-5, "@room:3"],
        rate_limit=3,
        dedup_window=10,
        notify_on=["5xx"],
        environment="canary",
    )
    assert ((-5, None), ("@room", 3)) == settings.telegram_chats
    assert (3, 10.0, frozenset({"5xx"}), "canary") == (
        settings.options.rate_limit,
        settings.options.dedup_window,
        settings.options.events,
        settings.options.identity.environment,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ASGI_OBSERVE_TELEGRAM_BOT_TOKEN": "nope:x y"}, "ASGI_OBSERVE_TELEGRAM_BOT_TOKEN"),
        ({"ASGI_OBSERVE_TELEGRAM_BOT_TOKEN": TOKEN}, "ASGI_OBSERVE_TELEGRAM_CHAT_IDS"),
        ({"ASGI_OBSERVE_TELEGRAM_CHAT_IDS": "42"}, "ASGI_OBSERVE_TELEGRAM_BOT_TOKEN"),
        ({**TELEGRAM, "ASGI_OBSERVE_TELEGRAM_CHAT_IDS": "chat"}, "ASGI_OBSERVE_TELEGRAM_CHAT_IDS"),
        ({**TELEGRAM, "ASGI_OBSERVE_TELEGRAM_CHAT_IDS": "1:x"}, "ASGI_OBSERVE_TELEGRAM_CHAT_IDS"),
        ({**TELEGRAM, "ASGI_OBSERVE_TELEGRAM_API_URL": "ftp://x"}, "ASGI_OBSERVE_TELEGRAM_API_URL"),
        ({"ASGI_OBSERVE_SLACK_WEBHOOK_URL": "hooks.slack.com/x"}, "ASGI_OBSERVE_SLACK_WEBHOOK_URL"),
        ({"ASGI_OBSERVE_DISCORD_WEBHOOK_URL": "https://:1/x"}, "ASGI_OBSERVE_DISCORD_WEBHOOK_URL"),
        ({"ASGI_OBSERVE_NOTIFY_WEBHOOK_URL": "http://h:99999/"}, "ASGI_OBSERVE_NOTIFY_WEBHOOK_URL"),
        ({"ASGI_OBSERVE_NOTIFY_ON": "exceptions,warnings"}, "ASGI_OBSERVE_NOTIFY_ON"),
        ({"ASGI_OBSERVE_NOTIFY_ON": "none,logs"}, "ASGI_OBSERVE_NOTIFY_ON: 'none' turns"),
        ({"ASGI_OBSERVE_NOTIFY_DEDUP_MINUTES": "-1"}, "ASGI_OBSERVE_NOTIFY_DEDUP_MINUTES"),
        ({"ASGI_OBSERVE_NOTIFY_DEDUP_MINUTES": "nan"}, "ASGI_OBSERVE_NOTIFY_DEDUP_MINUTES"),
        ({"ASGI_OBSERVE_NOTIFY_RATE_LIMIT": "0"}, "ASGI_OBSERVE_NOTIFY_RATE_LIMIT"),
        ({"ASGI_OBSERVE_NOTIFY_RATE_LIMIT": "2.5"}, "ASGI_OBSERVE_NOTIFY_RATE_LIMIT"),
        ({"ASGI_OBSERVE_NOTIFY_TIMEOUT": "0"}, "ASGI_OBSERVE_NOTIFY_TIMEOUT"),
        ({"ASGI_OBSERVE_TRACE_URL": "https://tempo/trace/"}, "ASGI_OBSERVE_TRACE_URL"),
        ({"ASGI_OBSERVE_TRACE_URL": "tempo/{trace_id}"}, "ASGI_OBSERVE_TRACE_URL"),
    ],
)
def test_a_bad_value_names_its_variable_at_startup(env: dict[str, str], named: str) -> None:
    for check in (read_notify_settings, validate_environment):
        with pytest.raises(ValueError, match=f"^{named}") as info:
            check(env)
        message = str(info.value)
        for secret in SECRET_VARIABLES & env.keys():  # never repeated, even when wrong
            assert env[secret] not in message


def test_a_bad_argument_names_the_argument() -> None:
    with pytest.raises(ValueError, match=r"^rate_limit"):
        configure_notifications(environ=TELEGRAM, rate_limit=0)
    with pytest.raises(ValueError, match=r"^telegram_chat_ids"):
        configure_notifications(environ=TELEGRAM, telegram_chat_ids="#general")


def test_observe_includes_the_layer_only_when_a_destination_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def layers(app: Any) -> list[str]:
        names = []
        while app is not None:
            names.append(type(app).__name__)
            app = getattr(app, "app", None)
        return names

    plain = plain_app()
    assert "NotifyMiddleware" not in layers(observe(plain, configure=False))
    assert None is get_notifier()
    for name, value in TELEGRAM.items():
        monkeypatch.setenv(name, value)
    observed = observe(plain, configure=False)
    assert "NotifyMiddleware" in layers(observed)
    notifier = get_notifier()
    assert notifier is not None and isinstance(notifier.destinations[0], TelegramDestination)
    assert "NotifyMiddleware" not in layers(observe(plain, configure=False, notify=False))
    monkeypatch.setenv("ASGI_OBSERVE_NOTIFY_RATE_LIMIT", "many")
    with pytest.raises(ValueError, match="ASGI_OBSERVE_NOTIFY_RATE_LIMIT"):
        observe(plain, configure=False)


def test_notify_true_without_a_destination_is_an_error() -> None:
    with pytest.raises(ValueError, match="no destination is configured"):
        observe(plain_app(), configure=False, notify=True)
    with pytest.raises(TypeError):
        NotifyMiddleware(plain_app(), notifier="telegram")  # type: ignore[arg-type]


def test_reprs_never_show_a_secret() -> None:
    settings = read_notify_settings(
        {
            **TELEGRAM,
            "ASGI_OBSERVE_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/SEKRIT",
        }
    )
    shown = repr(settings) + "".join(repr(d) for d in settings.destinations())
    assert TOKEN not in shown and "SEKRIT" not in shown


@pytest.mark.parametrize(
    ("build", "secret"),
    [
        (lambda: TelegramDestination("12345:has spaces SECRET", 1), "SECRET"),
        (lambda: TelegramDestination(TOKEN, 1, api_url="ftp://api/"), TOKEN),
        (lambda: SlackDestination("hooks.slack.com/services/SECRET"), "SECRET"),
        (lambda: DiscordDestination("discord.com/api/webhooks/1/SECRET"), "SECRET"),
        (lambda: WebhookDestination("//example/SECRET"), "SECRET"),
    ],
)
def test_a_bad_destination_error_never_repeats_the_secret(build: Any, secret: str) -> None:
    with pytest.raises(ValueError) as info:
        build()
    assert secret not in str(info.value) and secret not in repr(info.value)
