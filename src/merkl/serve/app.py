"""The ASGI app: Starlette routes over a `PipelineService`.

Endpoints are async only to read the body (with a size limit) and hand the request to worker
threads: task bodies are plain sync code. Two kinds of slots (`merkl.serve.workers`), `--threads`
of each: lookup slots build a request's graph and answer it when every output is cached; task
slots evaluate the rest. So cached requests are answered while every task slot is busy or hung.
Each request has `--timeout` seconds in all (504 after that; a hung task's slot is given back),
and concurrent requests for the same missing outputs are computed once: later ones wait for the
first and then load its results.

Every refusal is a JSON `{"error": ...}` with a 4xx status; a 500 means the pipeline or one of
its tasks raised, and names which and the exception type (its text only with `--debug`: it may
hold file contents or secrets).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from merkl.errors import MerklError, PathOutsideRepoError
from merkl.serve.openapi import openapi_document
from merkl.serve.payload import RequestError, dump_json
from merkl.serve.service import PipelineService, Prepared, ServeConfig
from merkl.serve.signing import SIGNATURE_HEADER
from merkl.serve.workers import TooManyHungError, Workers

CONFIG_ENV = "MERKL_SERVE_CONFIG"
_TASK_NOTE = "in merkl task "
_HUNG_PER_SLOT = 4  # hung requests allowed per task slot before new work gets 503
logger = logging.getLogger("merkl.serve")
_T = TypeVar("_T")


def create_app(config: ServeConfig | PipelineService) -> Starlette:
    """The app serving `config.targets` (imported now, once) from the repo it names."""
    service = config if isinstance(config, PipelineService) else PipelineService.load(config)
    settings = service.config
    limit = settings.max_body_bytes
    openapi = dump_json(openapi_document(service.pipelines))
    slots = settings.threads
    lookups = Workers(slots, "merkl-lookup", max_hung=_HUNG_PER_SLOT * slots)
    tasks = Workers(slots, "merkl-task", max_hung=_HUNG_PER_SLOT * slots)
    running: dict[tuple[str, ...], asyncio.Future[None]] = {}  # compute-once, by outputs

    async def within_deadline(
        target: str, workers: Workers, deadline: float, work: Callable[[], _T]
    ) -> _T | Response:
        try:
            return await workers.run(lambda: _guarded(target, work, settings.debug), deadline)
        except TimeoutError:
            return _timed_out(target, settings.timeout)
        except TooManyHungError:
            return _json(503, {"error": f"{target}: too many requests hang; try again later"})

    async def answer(target: str, prepare: Callable[[], Prepared]) -> Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.timeout
        for attempt in range(2):
            prepared = await within_deadline(target, lookups, deadline, prepare)
            if isinstance(prepared, Response):
                return prepared
            if prepared.answer is not None:
                return _payload_response(target, prepared.answer)
            job, key = prepared, prepared.key or ()
            first = running.get(key)
            if first is None or attempt == 1:
                break
            try:  # the same outputs are being computed: wait, then load them
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(first)
            except TimeoutError:
                return _timed_out(target, settings.timeout)
        done = loop.create_future() if key not in running else None
        if done is not None:
            running[key] = done
        try:
            result = await within_deadline(target, tasks, deadline, lambda: service.finish(job))
        finally:
            if done is not None:
                running.pop(key, None)
                done.set_result(None)
        return result if isinstance(result, Response) else _payload_response(target, result)

    async def healthz(request: Request) -> Response:
        hung = lookups.hung + tasks.hung
        return _json(
            200,
            {
                "status": "degraded" if hung else "ok",
                "targets": sorted(service.pipelines),
                "workers": {**tasks.status(), "hung": hung, "lookups": lookups.status()},
            },
        )

    async def run(request: Request) -> Response:
        target = request.path_params["target"]
        service.get_pipeline(target)  # 404 before reading a body
        body = await _read_body(request, limit)
        signature = request.headers.get(SIGNATURE_HEADER)
        return await answer(target, lambda: service.prepare(target, body, signature))

    async def dry_run(request: Request) -> Response:
        target = request.path_params["target"]
        service.get_pipeline(target)
        body = await _read_body(request, limit)
        deadline = asyncio.get_running_loop().time() + settings.timeout
        result = await within_deadline(
            target, lookups, deadline, lambda: service.dry_run(target, body)
        )
        return result if isinstance(result, Response) else _payload_response(target, result)

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


def _guarded(target: str, work: Callable[[], _T], debug: bool) -> _T | Response:
    """`work()` (in a worker thread), or the response for what it raised."""
    try:
        return work()
    except RequestError as exc:
        return _json(exc.status, {"error": str(exc)})
    except PathOutsideRepoError as exc:  # raised by a task body rather than the pipeline
        return _json(403, {"error": f"{target}: {exc}"})
    except Exception as exc:  # the pipeline's or a task's own exception: report, keep serving
        failure = describe_failure(target, exc, debug)
        logger.error("%s", describe_failure(target, exc, True)["error"], exc_info=exc)
        return _json(500, failure)


def _timed_out(target: str, timeout: float) -> Response:
    return _json(
        504,
        {
            "error": f"{target} did not finish within {timeout:g} s (merkl serve --timeout); "
            f"a task still running finishes in the background and its output is cached"
        },
    )


def _payload_response(target: str, payload: dict[str, Any]) -> Response:
    try:
        return Response(dump_json(payload), media_type="application/json")
    except TypeError as exc:
        message = f"{target} returned a result that JSON cannot carry: {exc}"
        logger.error("%s", message)
        return _json(500, {"error": message})


def describe_failure(target: str, exc: Exception, debug: bool = False) -> dict[str, Any]:
    """The 500 body for an exception raised while running `target`: the task and the type;
    the exception's own text only with `debug` (it may quote files or secrets)."""
    kind = type(exc).__name__
    detail = f": {exc}" if debug else ""
    for note in getattr(exc, "__notes__", []):
        if isinstance(note, str) and note.startswith(_TASK_NOTE):
            task = note[len(_TASK_NOTE) :].split(" [")[0]
            return {"error": f"task {task} raised {kind}{detail}", "task": task, "type": kind}
    if isinstance(exc, MerklError):  # merkl's own messages are written to be shown
        return {"error": f"{target}: {exc}", "type": kind}
    return {"error": f"pipeline {target} raised {kind}{detail}", "type": kind}


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
