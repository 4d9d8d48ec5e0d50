"""What the server does for a request, without the web framework: testable, and run in a thread.

Every request gets its own `Session` on the server's repo; nothing leaks between requests through
the process-default session. The repo (its store and SQLite index, with one connection per
thread) is shared, and so is the process's memory cache: the cache stays warm across requests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson

from merkl.evaluation import EvalStats, evaluate_value
from merkl.repo import Repo
from merkl.serve.client_values import store_client_values
from merkl.serve.payload import RequestError, parse_request
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


@dataclass(frozen=True)
class ServeConfig:
    """How `merkl serve` was started; crosses to uvicorn worker processes as JSON."""

    targets: tuple[str, ...]
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    secret_env: str = DEFAULT_SECRET_ENV  # the variable's name: the secret never leaves it
    allow_unsafe_values: bool = False
    repo_root: str | None = None  # None: found from the working directory
    threads: int = DEFAULT_THREADS  # requests evaluated at once, per process

    def to_json(self) -> str:
        return orjson.dumps(dataclasses.asdict(self)).decode()

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data = orjson.loads(text)
        data["targets"] = tuple(data["targets"])
        return cls(**data)


class PipelineService:
    """The served pipelines of one process, over one repo."""

    def __init__(self, repo: Repo, pipelines: dict[str, Pipeline], config: ServeConfig) -> None:
        self.repo = repo
        self.pipelines = pipelines
        self.config = config
        self.secret = read_secret(config.secret_env)
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
        pipeline = self.get_pipeline(target)
        request = parse_request(body)
        if request.cache:
            self._check_signature(body, signature)
        session = Session(self.repo, pending_writes=[])
        stats = EvalStats()
        with use_session(session):
            result = pipeline.call(request.args, request.kwargs)
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
            value = evaluate_value(
                (result, writes), session=session, stats=stats, pipeline=target
            )[0]
        return {
            "result": value,
            "hashes": hashes,
            "stats": {"ran": stats.ran, "loaded": stats.loaded, "client_values": accepted},
        }

    def dry_run(self, target: str, body: bytes) -> dict[str, Any]:
        """Every output `target` needs for the body's arguments, and which are cached."""
        pipeline = self.get_pipeline(target)
        request = parse_request(body)
        if request.cache:
            raise RequestError(422, 'a dry run takes no "cache"; send it with the run request')
        session = Session(self.repo, pending_writes=[])
        with use_session(session):
            result = pipeline.call(request.args, request.kwargs)
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
