"""The local viewer: traces, RED per route, errors and logs, in the process, in a browser.

Off unless enabled with ``observe(app, viewer_path="/_observe")``; see docs/viewer.md.
"""

from __future__ import annotations

from asgi_observe.viewer.capture import ViewerCaptureMiddleware
from asgi_observe.viewer.errors import default_fingerprint
from asgi_observe.viewer.viewer import Viewer

__all__ = ["Viewer", "ViewerCaptureMiddleware", "default_fingerprint"]
