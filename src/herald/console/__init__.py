"""The web console: static files (HTML, one JS module, CSS) served by ``herald serve`` at ``/``.

No build step: the browser loads them as they are and talks to the public API with the
token the user signs in with.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
