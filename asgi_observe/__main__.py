"""`python -m asgi_observe`: the same as the `asgi-observe` command."""

from .cli import main

raise SystemExit(main())
