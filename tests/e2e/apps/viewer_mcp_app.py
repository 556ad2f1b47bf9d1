"""The e2e mcp SDK server behind observe() with the viewer on, for the browser test."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mcp_servers import mcp_sdk_app

from asgi_observe import observe

app = observe(mcp_sdk_app(), viewer_path="/_observe", metrics_path="/metrics")
