"""What the server does for a request, without the web framework: testable, and run in a thread.

Every request gets its own `Session` on the server's repo; nothing leaks between requests through
the process-default session. The repo (its store and SQLite index, with one connection per
thread) is shared, and so is the process's memory cache: the cache stays warm across requests.

A run is two steps so the app can answer cached requests while every task slot is busy:
`prepare` builds the graph (the pipeline function, hashes, client values) and, when every
output is cached, answers at once; otherwise `finish` evaluates it in a task slot. The files a
pipeline names must be inside the repository (unless `allow_outside_paths`), and `write_file`
writes nothing unless `write_files` is set.

A repeated request is answered from `merkl.request_memo` without calling the pipeline: its root
output hashes are kept per target and arguments while the code and the files read to build it
are unchanged, and are looked up in the cache (`memo=False` or `MERKL_REQUEST_MEMO=0`: off).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from merkl.errors import PathOutsideRepoError
from merkl.evaluation import EvalStats, evaluate_value
from merkl.observers import should_watch
from merkl.placeholder import Placeholder
from merkl.repo import Repo
from merkl.request_memo import MISSING, CachedRoots, RequestMemo, arguments_key, recording
from merkl.serve.client_values import store_client_values
from merkl.serve.payload import RequestError, RunRequest, parse_request
from merkl.serve.pipeline import Pipeline, dry_run_outputs, root_hashes, root_nodes
from merkl.serve.signing import (
    DEFAULT_SECRET_ENV,
    SIGNATURE_HEADER,
    is_valid_signature,
    read_secret,
)
from merkl.session import Session, use_session

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_THREADS = 32
DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True)
class ServeConfig:
    """How `merkl serve` was started; crosses to uvicorn worker processes as JSON."""

    targets: tuple[str, ...]
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    secret_env: str = DEFAULT_SECRET_ENV  # the variable's name: the secret never leaves it
    allow_unsafe_values: bool = False
    repo_root: str | None = None  # None: found from the working directory
    threads: int = DEFAULT_THREADS  # requests evaluated at once, per process
    timeout: float = DEFAULT_TIMEOUT  # seconds before a request is answered 504
    allow_outside_paths: bool = False  # files a pipeline names may be outside the repo
    write_files: bool = False  # `write_file` writes into the work tree
    debug: bool = False  # a 500 carries the exception's text
    memo: bool = True  # repeated requests skip building the DAG (merkl.request_memo)

    def to_json(self) -> str:
        return orjson.dumps(dataclasses.asdict(self)).decode()

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data = orjson.loads(text)
        data["targets"] = tuple(data["targets"])
        return cls(**data)


@dataclass
class Prepared:
    """A run request with its graph built: answered already, or to be evaluated."""

    target: str
    session: Session
    result: Any
    writes: list[Any]
    hashes: list[str | None]
    accepted: int  # client-sent values stored
    answer: dict[str, Any] | None = None  # set when every output was cached
    key: tuple[str, ...] | None = None  # the same work for the same key (compute-once)


def _argument_holding(pipeline: Pipeline, request: RunRequest, path: str) -> str:
    """The name of the request argument whose value is `path` (or the path itself)."""
    names = list(pipeline.signature.parameters)
    for index, value in enumerate(request.args):
        if str(value) == path and index < len(names):
            return names[index]
    for name, value in request.kwargs.items():
        if str(value) == path:
            return name
    return path


class PipelineService:
    """The served pipelines of one process, over one repo."""

    def __init__(self, repo: Repo, pipelines: dict[str, Pipeline], config: ServeConfig) -> None:
        self.repo = repo
        self.pipelines = pipelines
        self.config = config
        self.secret = read_secret(config.secret_env)
        self._root = Path(os.path.realpath(repo.root))
        self.memo = RequestMemo(enabled=None if config.memo else False)  # None: as the env says
        repo.cache  # noqa: B018 - open store and index now, not in racing request threads

    @classmethod
    def load(cls, config: ServeConfig) -> PipelineService:
        """Find the repo and import every target once."""
        repo = Repo.find(config.repo_root)
        pipelines = {target: Pipeline.load(target) for target in config.targets}
        return cls(repo, pipelines, config)

    def get_pipeline(self, target: str) -> Pipeline:
        """The pipeline served as `target`.

        Raises:
            RequestError: 404 when the server was not started with that target.
        """
        try:
            return self.pipelines[target]
        except KeyError:
            served = ", ".join(sorted(self.pipelines))
            raise RequestError(
                404, f"no pipeline {target!r} is served here; served: {served}"
            ) from None

    def run(self, target: str, body: bytes, signature: str | None = None) -> dict[str, Any]:
        """Run `target` with the body's arguments: `{"result", "hashes", "stats"}`.

        Cached outputs are loaded, not recomputed. Client-sent values are stored first, and
        only when `signature` is valid for `body`.
        """
        prepared = self.prepare(target, body, signature)
        return prepared.answer if prepared.answer is not None else self.finish(prepared)

    def prepare(self, target: str, body: bytes, signature: str | None = None) -> Prepared:
        """Build the request's graph; answer it already when every output is cached."""
        pipeline = self.get_pipeline(target)
        request = parse_request(body)
        if request.cache:
            self._check_signature(body, signature)
        bound = pipeline.bind(request.args, request.kwargs)
        memo_key = self._memo_key(target, request, bound)
        if memo_key is not None:
            prepared = self._from_memo(target, pipeline, memo_key)
            if prepared is not None:
                return prepared
        session = self._session()
        with use_session(session), recording() as reads:
            result = self._call(pipeline, request, bound)
            writes = list(session.pending_writes or [])
            hashes = root_hashes(target, root_nodes(result))
            roots = root_nodes(result, (w.source for w in writes))
            root_hashes(target, roots)  # the written outputs' too, so a HashingError is a 422
            accepted = 0
            if request.cache:
                accepted = store_client_values(
                    target,
                    request.cache,
                    roots,
                    self.repo,
                    allow_unsafe=self.config.allow_unsafe_values,
                )
        if memo_key is not None and not (writes and self.config.write_files):
            cached_roots = CachedRoots.of(result, (w.source for w in writes))
            if cached_roots is not None:
                self.memo.put(memo_key, pipeline.function, reads, roots, (cached_roots, hashes))
        pending = [r for r in roots if isinstance(r, Placeholder)]
        prepared = Prepared(target, session, result, writes, hashes, accepted)
        if all(node.find_cached(self.repo.cache) is not None for node in pending):
            prepared.answer = self.finish(prepared)
        else:
            prepared.key = (target, *(node.hash or "" for node in pending))
        return prepared

    def _memo_key(
        self, target: str, request: RunRequest, bound: inspect.BoundArguments
    ) -> tuple[str, str] | None:
        """The memo key of a request the memo may answer: not one carrying client values
        (they are stored while building), nor while lineage hooks watch evaluations."""
        if not self.memo.enabled or request.cache or should_watch():
            return None
        key = arguments_key(bound.args, bound.kwargs)
        return None if key is None else (target, key)

    def _from_memo(self, target: str, pipeline: Pipeline, key: tuple[str, str]) -> Prepared | None:
        """The answer from the memo and the cache, without calling the pipeline; None when the
        memo holds nothing valid or a root output left the cache (then the graph is built)."""
        found = self.memo.get(key, pipeline.function)
        if found is None:
            return None
        cached_roots, hashes = found
        value = cached_roots.load(self.repo.cache)
        if value is MISSING:
            return None
        stats = {"ran": 0, "loaded": len(cached_roots.outputs), "client_values": 0}
        prepared = Prepared(target, self._session(), None, [], hashes, 0)
        prepared.answer = {"result": value, "hashes": hashes, "stats": stats}
        return prepared

    def finish(self, prepared: Prepared) -> dict[str, Any]:
        """Evaluate a prepared request (running the tasks whose outputs are not cached)."""
        stats = EvalStats()
        writes: list[Any] = list(prepared.writes)
        if not self.config.write_files:  # compute and cache what they would write, only
            writes = [w.source for w in writes]
        with use_session(prepared.session) as session:
            value = evaluate_value(
                (prepared.result, writes), session=session, stats=stats, pipeline=prepared.target
            )[0]
        counts = {"ran": stats.ran, "loaded": stats.loaded, "client_values": prepared.accepted}
        return {"result": value, "hashes": prepared.hashes, "stats": counts}

    def _session(self) -> Session:
        confine = None if self.config.allow_outside_paths else self._root
        return Session(self.repo, pending_writes=[], confine_paths=confine)

    def _call(
        self, pipeline: Pipeline, request: RunRequest, bound: inspect.BoundArguments | None = None
    ) -> Any:
        """The pipeline's result; a path outside the repository is a 403 naming the argument."""
        try:
            return pipeline.call(request.args, request.kwargs, bound)
        except PathOutsideRepoError as exc:
            name = _argument_holding(pipeline, request, str(getattr(exc, "path", "")))
            raise RequestError(
                403,
                f"{pipeline.name}: argument {name!r} names a file outside the repository; "
                f"this server only reads and writes files inside it",
            ) from None

    def dry_run(self, target: str, body: bytes) -> dict[str, Any]:
        """Every output `target` needs for the body's arguments, and which are cached."""
        pipeline = self.get_pipeline(target)
        request = parse_request(body)
        if request.cache:
            raise RequestError(422, 'a dry run takes no "cache"; send it with the run request')
        session = self._session()
        with use_session(session):
            result = self._call(pipeline, request)
            roots = root_nodes(result, (w.source for w in session.pending_writes or []))
            root_hashes(target, roots)
            return {"outputs": dry_run_outputs(roots, self.repo.cache)}

    def _check_signature(self, body: bytes, signature: str | None) -> None:
        if self.secret is None:
            raise RequestError(
                403,
                f'this server accepts no client-sent "cache" values: it was started '
                f"without a secret in ${self.config.secret_env}",
            )
        if not is_valid_signature(body, self.secret, signature):
            problem = "is missing" if not signature else "does not match the body"
            raise RequestError(
                403,
                f'client-sent "cache" values need a {SIGNATURE_HEADER} header (hex '
                f"HMAC-SHA256 of the raw body with the shared secret); it {problem}, so "
                f"nothing was stored",
            )
