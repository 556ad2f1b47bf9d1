"""asgi-observe: serve any ASGI app under uvicorn, wrapped by observe(), zero code changes."""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from asgi_observe import __version__
from asgi_observe._core.types import ASGIApp
from asgi_observe.cli.target import (
    TargetError,
    check_target,
    default_service_name,
    service_name_source,
)

__all__ = ["app_factory", "main"]

# What `run` hands to the factory in every worker process (uvicorn needs an import
# string to start workers, so the options travel as variables).
TARGET_VAR = "ASGI_OBSERVE_TARGET"
FACTORY_VAR = "ASGI_OBSERVE_TARGET_FACTORY"
METRICS_PATH_VAR = "ASGI_OBSERVE_METRICS_PATH"
HEALTH_PATH_VAR = "ASGI_OBSERVE_HEALTH_PATH"
ACCESS_LOG_VAR = "ASGI_OBSERVE_ACCESS_LOG"
JSON_LOGS_VAR = "ASGI_OBSERVE_JSON_LOGS"
VIEWER_PATH_VAR = "ASGI_OBSERVE_VIEWER_PATH"
DEFAULT_VIEWER_PATH = "/_observe"
MULTIPROC_VAR = "PROMETHEUS_MULTIPROC_DIR"
_FACTORY = "asgi_observe.cli:app_factory"
_MAX_PORT = 65535


def app_factory() -> ASGIApp:
    """Build the app `asgi-observe run` serves, from the variables the CLI set.

    Called by uvicorn (``factory=True``) once in each worker process. Since 0.1.0.
    """
    from uvicorn.importer import import_from_string

    from asgi_observe.observe import observe

    if os.environ.get(JSON_LOGS_VAR) == "1":
        _json_logging()
    app: Any = import_from_string(os.environ[TARGET_VAR])
    if os.environ.get(FACTORY_VAR) == "1":
        app = app()
    return observe(
        app,
        metrics_path=os.environ.get(METRICS_PATH_VAR) or None,
        health_path=os.environ.get(HEALTH_PATH_VAR) or None,
        access_log=os.environ.get(ACCESS_LOG_VAR) == "1",
        viewer_path=os.environ.get(VIEWER_PATH_VAR) or None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asgi-observe`` command. Since 0.1.0."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run" and ":" not in args.target:
        parser.error(f"{args.target!r}: expected MODULE:APP, e.g. myproject.main:app")
    if args.command == "run" and args.workers < 1:
        parser.error("--workers must be at least 1")
    if not 0 <= args.port <= _MAX_PORT:
        parser.error(f"--port must be between 0 and {_MAX_PORT}, not {args.port}")
    for path in (args.metrics_path, args.health_path, args.viewer):
        if path and not path.startswith("/"):
            parser.error(f"{path!r}: paths must start with '/'")
    if args.command == "run" and args.viewer and args.workers > 1:
        # Each worker keeps its own viewer data: one page would show a random worker's.
        parser.error("--viewer needs --workers 1")
    if args.command == "demo":
        _demo_environment()
    from asgi_observe.setup.config import validate_environment

    try:
        validate_environment()
    except ValueError as exc:
        parser.exit(2, f"asgi-observe: error: {exc}\n")
    try:
        import uvicorn
    except ImportError:
        parser.exit(2, "asgi-observe: error: uvicorn is needed: pip install uvicorn\n")
    if args.command == "demo":
        return _demo(args, uvicorn)
    return _run(args, uvicorn)


def _run(args: argparse.Namespace, uvicorn: Any) -> int:
    if args.app_dir not in sys.path:
        sys.path.insert(0, args.app_dir)  # as uvicorn's --app-dir; spawned workers inherit it
    if service_name_source(os.environ) is None:
        # Rather than the SDK's unknown_service:python3; the workers inherit it, and an
        # app that calls configure() when imported (just below) sees it too.
        os.environ["OTEL_SERVICE_NAME"] = default_service_name(args.target)
        args.service_source = "from MODULE:APP; set OTEL_SERVICE_NAME to choose"
    if args.json_logs:
        _json_logging()  # before the app is imported: its import-time lines are JSON too
    try:
        # Before the banner and before any worker starts: a wrong MODULE:APP is one line
        # (docs/cli.md, "Exit status"); with one worker this import is the one served.
        check_target(args.target, factory=args.factory)
    except TargetError as exc:
        print(f"asgi-observe: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_status
    os.environ.update(
        {
            TARGET_VAR: args.target,
            FACTORY_VAR: "1" if args.factory else "0",
            METRICS_PATH_VAR: args.metrics_path or "",
            HEALTH_PATH_VAR: args.health_path or "",
            ACCESS_LOG_VAR: "1" if args.access_log else "0",
            JSON_LOGS_VAR: "1" if args.json_logs else "0",
            VIEWER_PATH_VAR: args.viewer or "",
        }
    )
    multiproc_dir = None
    if args.workers > 1 and not os.environ.get(MULTIPROC_VAR):
        # Workers write their samples here and any of them aggregates on a scrape.
        multiproc_dir = tempfile.mkdtemp(prefix="asgi-observe-metrics-")
        os.environ[MULTIPROC_VAR] = multiproc_dir
    _announce(args)
    try:
        uvicorn.run(
            _FACTORY,
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            lifespan="on",  # LifespanMiddleware answers it even for apps that do not
            log_level=args.log_level,
            log_config=_log_config(args, uvicorn),
            access_log=not args.access_log,
            root_path=args.root_path,
        )
    finally:
        if multiproc_dir is not None:
            shutil.rmtree(multiproc_dir, ignore_errors=True)
    return 0


def _log_config(args: argparse.Namespace, uvicorn: Any) -> dict[str, Any] | None:
    if args.json_logs:
        return None  # _json_logging() set up the root logger, in every worker too
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    if args.access_log:
        from asgi_observe.logs.correlation import ACCESS_LOGGER_NAME

        # uvicorn's configuration has no handler or level for our access logger: without
        # these, `--access-log` alone wrote nothing (issue 13). Its own access formatter
        # expects its own record arguments; the default one prints our message.
        config["handlers"]["asgi_observe.access"] = {
            "formatter": "default",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
        }
        config["loggers"][ACCESS_LOGGER_NAME] = {
            "handlers": ["asgi_observe.access"],
            "level": "INFO",
            "propagate": False,
        }
    return config


def _demo_environment() -> None:
    os.environ.setdefault("OTEL_SERVICE_NAME", "asgi-observe-demo")
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        os.environ.setdefault("OTEL_TRACES_EXPORTER", "console")


def _demo(args: argparse.Namespace, uvicorn: Any) -> int:
    from asgi_observe.cli.demo import app as demo_app
    from asgi_observe.observe import observe

    _json_logging()
    args.metrics_path, args.health_path = "/metrics", "/health"
    _announce(args, demo=True)
    app = observe(
        demo_app,
        metrics_path="/metrics",
        health_path="/health",
        access_log=True,
        viewer_path=args.viewer,
    )
    config = uvicorn.Config(app, host=args.host, port=args.port, log_config=None, access_log=False)
    asyncio.run(_serve_demo(uvicorn.Server(config), args))
    return 0


async def _serve_demo(server: Any, args: argparse.Namespace) -> None:
    from asgi_observe.cli.demo import WARM_UP_PATHS, warm_up

    serving = asyncio.create_task(server.serve())
    # uvicorn's Server says it is listening only through this flag.
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if server.started and args.viewer:
        # So that the viewer's first look is not empty.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(args.host, args.host)
        try:
            await warm_up(host, args.port)
            print(f"asgi-observe: sent the demo {' '.join(WARM_UP_PATHS)}", flush=True)
        except OSError as exc:
            print(f"asgi-observe: could not send the demo its first requests: {exc}", flush=True)
    await serving


def _announce(args: argparse.Namespace, *, demo: bool = False) -> None:
    base = f"http://{args.host}:{args.port}"
    lines = [f"asgi-observe: serving {'the demo app' if demo else args.target} at {base}"]
    if args.metrics_path:
        lines.append(f"  metrics: {base}{args.metrics_path}")
    if args.health_path:
        lines.append(f"  health:  {base}{args.health_path}/live|ready|startup")
    if args.viewer:
        lines.append(f"  viewer:  {base}{args.viewer}/  (traces, RED, errors, logs)")
    if demo:
        lines.append(f"  try:     {base}/items/42  {base}/slow  {base}/stream  {base}/error")
        lines.append("  logs:    one JSON line per request on stderr, with request_id and trace_id")
    lines.append(f"  service: {_service_line(args)}")
    if getattr(args, "workers", 1) > 1 and args.metrics_path:
        lines.append(
            f"  workers: {args.workers}, metrics summed across them; process_* per worker"
            " (pid label), no python_gc_*"
        )
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "otlp" if endpoint else "none")
    where = f"OTLP to {endpoint}" if endpoint and "otlp" in exporter else exporter
    lines.append(f"  spans:   {where}" + ("" if endpoint else " (set OTEL_EXPORTER_OTLP_ENDPOINT)"))
    print("\n".join(lines), flush=True)


def _service_line(args: argparse.Namespace) -> str:
    derived = getattr(args, "service_source", None)
    named = service_name_source(os.environ)
    if named is None:
        return "unknown_service (set OTEL_SERVICE_NAME)"
    name, variable = named
    return f"{name} ({derived or variable})"


def _json_logging() -> None:
    from asgi_observe.logs.correlation import JsonFormatter

    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asgi-observe",
        description="Serve an ASGI app with traces, request ids, metrics and error capture.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="serve MODULE:APP under uvicorn, wrapped by observe()")
    run.add_argument("target", metavar="MODULE:APP", help="the ASGI app, e.g. myproject.main:app")
    demo = commands.add_parser("demo", help="serve the bundled demo app")
    for command in (run, demo):
        command.add_argument("--host", default="127.0.0.1", help="bind address (127.0.0.1)")
        command.add_argument("--port", type=int, default=8000, help="bind port (8000)")
    run.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    paths = run.add_mutually_exclusive_group()
    paths.add_argument("--metrics-path", default="/metrics", help="metrics path (/metrics)")
    paths.add_argument(
        "--no-metrics-path", dest="metrics_path", action="store_const", const=None,
        help="do not serve metrics",
    )  # fmt: skip
    run.add_argument("--health-path", default=None, help="mount the health probes here")
    run.add_argument("--factory", action="store_true", help="MODULE:APP is a factory to call")
    run.add_argument("--app-dir", default=".", help="look for MODULE here (.)")
    run.add_argument("--root-path", default="", help="ASGI root_path, behind a proxy")
    run.add_argument("--access-log", action="store_true", help="asgi_observe's access log")
    run.add_argument("--json-logs", action="store_true", help="log JSON lines with ids")
    run.add_argument("--log-level", default="info", help="uvicorn's log level (info)")
    run.add_argument(
        "--viewer", nargs="?", const=DEFAULT_VIEWER_PATH, default=None, metavar="PATH",
        help=f"serve the local viewer at PATH ({DEFAULT_VIEWER_PATH}), loopback clients only",
    )  # fmt: skip
    viewer = demo.add_mutually_exclusive_group()
    viewer.add_argument(
        "--viewer", nargs="?", const=DEFAULT_VIEWER_PATH, default=DEFAULT_VIEWER_PATH,
        metavar="PATH", help=f"serve the local viewer at PATH (on, at {DEFAULT_VIEWER_PATH})",
    )  # fmt: skip
    viewer.add_argument(
        "--no-viewer", dest="viewer", action="store_const", const=None, help="no viewer"
    )
    demo.set_defaults(metrics_path="/metrics", health_path="/health")
    return parser
