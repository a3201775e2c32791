"""`grapepose serve`: an HTTP pose service with a web page, batching images across requests.

Needs the `serve` extra (`pip install 'grapepose[serve]'`: Starlette, uvicorn, python-multipart, Pillow).
See docs/SERVE.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "ServeSettings"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from grapepose.serve.app import create_app

        return create_app
    if name == "ServeSettings":
        from grapepose.serve.schemas import ServeSettings

        return ServeSettings
    raise AttributeError(f"module 'grapepose.serve' has no attribute {name!r}")
