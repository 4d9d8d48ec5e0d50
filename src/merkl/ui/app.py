"""The ASGI app of `merkl ui`: an HTML page and a JSON twin under `/api/…` for each view.

Read-only unless started with `allow_writes`: then `POST /api/outputs/<hash>/forget` drops an
output from the cache index (the next run computes it again) and `…/pull` fetches it from the
default remote (`actions.py`), each only with a JSON body `{"confirm": "<the same hash>"}` from
a page of this server (a cross-site form cannot send one). Endpoints are plain functions:
Starlette runs them in its thread pool, so a slow DAG does not stall the polling of other pages.
"""

from __future__ import annotations

import inspect
import logging
from importlib.resources import files
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from merkl.errors import CacheError, MerklError, UsageError
from merkl.hashing import HEX_LEN, is_hex_hash
from merkl.provenance.model import short_repr
from merkl.repo import Repo
from merkl.serve.app import describe_failure
from merkl.ui import pages
from merkl.ui.actions import forget_output, pull_output
from merkl.ui.dag_view import VIEW_PARAMETER, DagBuilder, parameters_of
from merkl.ui.discover import find_pipelines
from merkl.ui.lineage_view import lineage_data, lineage_graph
from merkl.ui.repo_views import (
    files_data,
    fingerprint,
    output_remotes,
    overview_data,
    runs_data,
)

logger = logging.getLogger("merkl.ui")
_ACTIONS = {"forget": forget_output, "pull": pull_output}
_STATIC_TYPES = {
    "ui.css": "text/css; charset=utf-8",
    "ui.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# No script, style or image from anywhere but this server; no framing.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def create_app(
    repo: Repo, *, allow_writes: bool = False, hosts: frozenset[str] | None = LOOPBACK_NAMES
) -> Starlette:
    """The app over `repo`; its pipelines are imported from the current directory.

    `hosts`: the names the `Host` header may give (None: any). Refusing others stops a web
    page from reaching this server through a DNS name of its own (DNS rebinding); refusing
    requests a browser marks `Sec-Fetch-Site: cross-site` stops other sites' pages from
    making it compute DAGs.
    """
    static = {name: (files("merkl.ui") / "static" / name).read_bytes() for name in _STATIC_TYPES}
    dags = DagBuilder(repo.root)

    def html(request: Request, title: str, body: str, api: str) -> HTMLResponse:
        return HTMLResponse(
            pages.page(
                title,
                body,
                path=request.url.path,
                api=api,
                version=fingerprint(repo),
                writes=allow_writes,
            ),
            headers=_HEADERS,
        )

    def overview() -> dict[str, Any]:
        return overview_data(repo, [vars(p) for p in find_pipelines(repo.root)])

    def runs(request: Request) -> dict[str, Any]:
        query = request.query_params
        return runs_data(
            repo,
            task=query.get("task") or None,
            since_hours=_number(query, "since", float),
            limit=_number(query, "limit", int) or 0,
        )

    def index_page(request: Request) -> Response:
        return html(request, "Overview", pages.overview_body(overview()), "/api/overview")

    def runs_page(request: Request) -> Response:
        api = "/api/runs" + (f"?{request.url.query}" if request.url.query else "")
        return html(request, "Runs", pages.runs_body(runs(request)), api)

    def files_page(request: Request) -> Response:
        data = files_data(repo, check_remotes=_flag(request, "remotes"))
        api = "/api/files" + (f"?{request.url.query}" if request.url.query else "")
        return html(request, "Files", pages.files_body(data), api)

    def lineage_page(request: Request) -> Response:
        data = lineage_data(repo)
        return html(
            request, "Lineage", pages.lineage_body(data, lineage_graph(data)), "/api/lineage"
        )

    def dag_page(request: Request) -> Response:
        target = request.path_params["target"]
        query = list(request.query_params.multi_items())
        api = f"/api/dag/{target}" + (f"?{request.url.query}" if request.url.query else "")
        try:
            view = dags.page(target, query, details=False)
            given = dict(query)
            parameters = [
                (name, given.get(name, ""), _default_text(parameter))
                for name, parameter in parameters_of(target).items()
            ]
        except Exception as exc:  # a bad request, or the pipeline's own exception
            status, error = _failure(target, exc)
            response = html(request, target, pages.error_body(error["error"]), api)
            response.status_code = status
            return response
        return html(request, target, pages.dag_body(view, parameters), api)

    def api_dag(request: Request) -> Response:
        target = request.path_params["target"]
        query = list(request.query_params.multi_items())
        try:
            return _json(dags.page(target, query).data)
        except Exception as exc:
            return _json(*reversed(_failure(target, exc)))

    def api_remotes(request: Request) -> Response:
        return _json(output_remotes(repo, _output_hash(request)))

    async def api_write(request: Request) -> Response:
        """POST /api/outputs/HASH/ACTION with {"confirm": HASH}: forget or pull."""
        if not allow_writes:
            return _json({"error": "merkl ui is read-only; start it with --allow-writes"}, 403)
        out_hash = _output_hash(request)
        origin = request.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
            return _json({"error": f"a request from {origin} may not change this repository"}, 403)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict) or body.get("confirm") != out_hash:
            return _json({"error": 'confirm with the JSON body {"confirm": "<output hash>"}'}, 400)
        action = _ACTIONS[request.url.path.rsplit("/", 1)[1]]
        try:
            result = await run_in_threadpool(action, repo, out_hash)
        except CacheError as exc:
            return _json({"error": str(exc)}, 404)
        return _json(result)

    routes = [
        Route("/", index_page),
        Route("/runs", runs_page),
        Route("/files", files_page),
        Route("/lineage", lineage_page),
        Route("/dag/{target}", dag_page),
        Route("/api/overview", lambda r: _json(overview())),
        Route("/api/runs", lambda r: _json(runs(r))),
        Route("/api/files", lambda r: _json(files_data(repo, check_remotes=_flag(r, "remotes")))),
        Route("/api/lineage", lambda r: _json(lineage_data(repo))),
        Route("/api/dag/{target}", api_dag),
        Route("/api/version", lambda r: _json({"version": fingerprint(repo)})),
        Route("/api/outputs/{hash}/remotes", api_remotes),
        *(
            Route(f"/api/outputs/{{hash}}/{name}", api_write, methods=["POST"])
            for name in _ACTIONS
        ),
        Route("/static/{name}", lambda r: _static(static, r.path_params["name"])),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={MerklError: _merkl_error, HTTPException: _http_error},
        middleware=[Middleware(_SameSiteOnly, hosts=hosts)],
    )
    app.state.repo = repo
    return app


def _failure(target: str, exc: Exception) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) for an exception raised while building `target`'s DAG: 400 for
    a bad request, 500 naming the pipeline or task that raised (logged with its traceback)."""
    if isinstance(exc, UsageError):
        return 400, {"error": str(exc)}
    logger.error("merkl ui: %s", exc, exc_info=exc)
    return 500, describe_failure(target, exc)


def _default_text(parameter: inspect.Parameter) -> str:
    """What a left-out argument becomes: its default, or a missing-argument placeholder."""
    if parameter.default is parameter.empty:
        return "missing"
    return f"default {short_repr(parameter.default)}"


class _SameSiteOnly:
    """Refuses requests for another host name, and those a browser sent for another site."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            host = _host_name(headers.get("host", ""))
            if self.hosts is not None and host not in self.hosts:
                message = f"host {host!r} is not served here; open http://127.0.0.1:PORT/"
                await _json({"error": message}, 403)(scope, receive, send)
                return
            if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                message = "merkl ui answers only its own pages, not requests from other sites"
                await _json({"error": message}, 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_name(header: str) -> str:
    """`127.0.0.1` of `127.0.0.1:8765`, `[::1]` of `[::1]:8765`."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0]


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data), status_code=status, media_type="application/json", headers=_HEADERS
    )


def _static(static: dict[str, bytes], name: str) -> Response:
    if name not in static:
        raise HTTPException(404)
    return Response(
        static[name], media_type=_STATIC_TYPES[name], headers={"Cache-Control": "max-age=60"}
    )


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "") in ("1", "true", "yes", "on")


def _number(query: Any, name: str, kind: type[int] | type[float]) -> Any:
    text = query.get(name) or ""
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"?{name}={text!r} is not a number") from None
    if value < 0:
        raise UsageError(f"?{name}={text!r} must not be negative")
    return value


def _output_hash(request: Request) -> str:
    digest = str(request.path_params["hash"]).removeprefix("blake3:").lower()
    if len(digest) != HEX_LEN or not is_hex_hash(digest):
        raise UsageError(f"{digest!r} is not an output hash ({HEX_LEN} hex digits)")
    return digest


async def _merkl_error(request: Request, exc: Exception) -> Response:
    status = 400 if isinstance(exc, UsageError) else 500
    if request.url.path.startswith("/api/"):
        return _json({"error": str(exc)}, status)
    body = pages.page(
        "Error", pages.error_body(str(exc)), path=request.url.path, api="", version=""
    )
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = f"no page {request.url.path!r}" if exc.status_code == 404 else str(exc.detail)
    return _json({"error": message}, exc.status_code)


__all__ = ["VIEW_PARAMETER", "create_app"]
