"""The ASGI app: Starlette routes over a `PipelineService`.

Endpoints are async only to read the body (with a size limit) and hand the request to a worker
thread: task bodies are plain sync code. The threads are the app's own `ThreadPoolExecutor`
(`--threads`) rather than `starlette.concurrency.run_in_threadpool`: anyio's hop to a thread
cost more than the whole cached evaluation (measured 2,600 vs 1,800 requests/s).

Every refusal is a JSON `{"error": ...}` with a 4xx status; a 500 means the pipeline or one of its
tasks raised, and says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from merkl.errors import MerklError
from merkl.serve.openapi import openapi_document
from merkl.serve.payload import RequestError, dump_json
from merkl.serve.service import PipelineService, ServeConfig
from merkl.serve.signing import SIGNATURE_HEADER

CONFIG_ENV = "MERKL_SERVE_CONFIG"
_TASK_NOTE = "in merkl task "
logger = logging.getLogger("merkl.serve")


def create_app(config: ServeConfig | PipelineService) -> Starlette:
    """The app serving `config.targets` (imported now, once) from the repo it names."""
    service = config if isinstance(config, PipelineService) else PipelineService.load(config)
    limit = service.config.max_body_bytes
    openapi = dump_json(openapi_document(service.pipelines))
    threads = ThreadPoolExecutor(service.config.threads, thread_name_prefix="merkl-serve")

    async def in_thread(target: str, handle: Callable[[], dict[str, Any]]) -> Response:
        return await asyncio.get_running_loop().run_in_executor(threads, _answer, target, handle)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        threads.shutdown(wait=False, cancel_futures=True)

    async def healthz(request: Request) -> Response:
        return _json(200, {"status": "ok", "targets": sorted(service.pipelines)})

    async def run(request: Request) -> Response:
        target = request.path_params["target"]
        service.get_pipeline(target)  # 404 before reading a body
        body = await _read_body(request, limit)
        signature = request.headers.get(SIGNATURE_HEADER)
        return await in_thread(target, lambda: service.run(target, body, signature))

    async def dry_run(request: Request) -> Response:
        target = request.path_params["target"]
        service.get_pipeline(target)
        body = await _read_body(request, limit)
        return await in_thread(target, lambda: service.dry_run(target, body))

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/v1/run/{target}", run, methods=["POST"]),
            Route("/v1/dry-run/{target}", dry_run, methods=["POST"]),
        ],
        exception_handlers={RequestError: _request_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.service = service
    return app


def app_from_environment() -> Starlette:
    """The app for a uvicorn worker process: its config comes in `$MERKL_SERVE_CONFIG`."""
    return create_app(ServeConfig.from_json(os.environ[CONFIG_ENV]))


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, f"Content-Length {declared!r} is not a number of bytes")
        if int(declared) > limit:
            raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body, or one longer than it said
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> RequestError:
    return RequestError(
        413,
        f"the request body has {size} bytes or more; this server takes at most {limit} "
        f"(merkl serve --max-body-bytes)",
    )


def _answer(target: str, handle: Callable[[], dict[str, Any]]) -> Response:
    """Run `handle` (in a worker thread) and turn what happens into a JSON response."""
    try:
        payload = handle()
    except RequestError as exc:
        return _json(exc.status, {"error": str(exc)})
    except Exception as exc:  # the pipeline's or a task's own exception: report, keep serving
        failure = describe_failure(target, exc)
        logger.error("%s", failure["error"], exc_info=exc)
        return _json(500, failure)
    try:
        return Response(dump_json(payload), media_type="application/json")
    except TypeError as exc:
        message = f"{target} returned a result that JSON cannot carry: {exc}"
        logger.error("%s", message)
        return _json(500, {"error": message})


def describe_failure(target: str, exc: Exception) -> dict[str, Any]:
    """The 500 body for an exception raised while running `target`."""
    kind = type(exc).__name__
    for note in getattr(exc, "__notes__", []):
        if isinstance(note, str) and note.startswith(_TASK_NOTE):
            task = note[len(_TASK_NOTE) :].split(" [")[0]
            return {"error": f"task {task} raised {kind}: {exc}", "task": task, "type": kind}
    if isinstance(exc, MerklError):
        return {"error": f"{target}: {exc}", "type": kind}
    return {"error": f"pipeline {target} raised {kind}: {exc}", "type": kind}


def _json(
    status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        dump_json(payload), status_code=status, headers=headers, media_type="application/json"
    )


async def _request_error(request: Request, exc: Exception) -> Response:
    status = exc.status if isinstance(exc, RequestError) else 400
    return _json(status, {"error": str(exc)})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no endpoint {request.url.path!r}; see GET /openapi.json"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path!r}"
    else:
        message = str(exc.detail)
    return _json(exc.status_code, {"error": message}, headers=exc.headers)
