"""`merkl serve`: pipelines behind HTTP (Starlette on uvicorn) with warm caches.

- `merkl.serve.service`: what a request does, framework-free (a `Session` per request).
- `merkl.serve.app`: the Starlette app (`create_app`); imports starlette.
- `merkl.serve.signing`: HMAC signatures for client-sent cache values.
- `merkl.client.Client`: the Python client.

Importing this package stays light; starlette is imported by `create_app` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from merkl.serve.service import DEFAULT_MAX_BODY_BYTES, PipelineService, ServeConfig

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["DEFAULT_MAX_BODY_BYTES", "PipelineService", "ServeConfig", "create_app"]


def create_app(config: ServeConfig | PipelineService) -> Starlette:
    """The ASGI app serving `config.targets`; see `merkl.serve.app.create_app`."""
    from merkl.serve.app import create_app as create

    return create(config)
