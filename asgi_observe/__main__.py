"""`python -m asgi_observe`: the same as the `asgi-observe` command."""

from asgi_observe.cli.main import main

raise SystemExit(main())
