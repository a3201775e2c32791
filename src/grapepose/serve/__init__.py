"""`grapepose serve`: an HTTP pose service with a web page, batching images across requests.

Needs the `serve` extra (`pip install 'grapepose[serve]'`: Starlette, uvicorn, python-multipart, Pillow).
See docs/SERVE.md.
"""

from __future__ import annotations

from grapepose._lazy import lazy_exports

_EXPORTS = {"create_app": "grapepose.serve.app", "ServeSettings": "grapepose.serve.schemas"}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
