"""``python -m asgi_observe.dashboards [--namespace NAME] [--selector M] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys

from . import render, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asgi_observe.dashboards",
        description="Write the Grafana RED dashboard and Prometheus alert rules.",
    )
    parser.add_argument("--namespace", default="", help="metric namespace given to observe()")
    parser.add_argument(
        "--selector",
        default="",
        help="PromQL label matchers every rule and query gets, e.g. 'job=\"my-service\"'",
    )
    parser.add_argument("--out", help="directory to write into (default: print the file names)")
    args = parser.parse_args(argv)
    try:
        if args.out is None:
            rendered = render(args.namespace, selector=args.selector)
            for name in rendered:
                print(name)
            return 0
        for path in write(args.out, namespace=args.namespace, selector=args.selector):
            print(path)
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
