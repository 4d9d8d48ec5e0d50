"""A Python client for `merkl serve`.

```python
from merkl.client import Client

with Client("http://127.0.0.1:8000") as client:
    client.run("pipeline1.my_pipeline", 3, y=2.0)      # the result, as JSON gives it back
    client.dry_run("pipeline1.my_pipeline", 3)         # [{"hash", "task", "index", "cached"}]
```

With the server's shared `secret`, `run` first asks the server which outputs it lacks, builds the
same graph locally (the pipeline must be importable here, in the same version), and sends the
values of the missing outputs it has in its own cache, signed, so the server need not compute
them. Only JSON-serialized outputs are sent.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from merkl.cache import Cache
from merkl.errors import MerklError
from merkl.placeholder import Lazy, Placeholder
from merkl.repo import Repo
from merkl.serve.payload import dump_json
from merkl.serve.pipeline import Pipeline, dry_run_outputs, root_nodes
from merkl.serve.signing import SIGNATURE_HEADER, sign_body
from merkl.session import Session, use_session

if TYPE_CHECKING:
    import httpx

__all__ = ["Client", "ServerError"]


class ServerError(MerklError):
    """The server refused or failed a request (`status`, `error`, `task`), or was unreachable
    (`status` is None)."""

    status: int | None
    error: str
    task: str | None


class Client:
    """Runs and dry-runs the pipelines a `merkl serve` at `url` serves.

    Args:
        url: the server's base URL, e.g. `http://127.0.0.1:8000`.
        secret: the server's shared secret; enables sending locally cached values.
        send_cache: whether `run` sends locally cached values (default: when `secret` is set).
        repo: the local repo for `dry_run_local` and sent values (default: found from the
            working directory).
        timeout: seconds to wait for a response.
        transport: an httpx transport (tests pass `httpx.ASGITransport` or a mock).
    """

    def __init__(
        self,
        url: str,
        secret: str | bytes | None = None,
        *,
        send_cache: bool | None = None,
        repo: Repo | Path | str | None = None,
        timeout: float = 300.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.secret = secret or None
        self.send_cache = self.secret is not None if send_cache is None else send_cache
        if self.send_cache and self.secret is None:
            raise MerklError("Client(send_cache=True) needs the server's `secret` to sign with")
        self._repo = repo
        self._pipelines: dict[str, Pipeline] = {}
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def health(self) -> dict[str, Any]:
        """The server's `/healthz` answer: `{"status": "ok", "targets": [...]}`."""
        return self._request("GET", "/healthz", b"")  # type: ignore[no-any-return]

    def run(self, target: str, /, *args: Any, **kwargs: Any) -> Any:
        """The result of `target(*args, **kwargs)` computed (or loaded) by the server."""
        return self.run_response(target, args, kwargs)["result"]

    def run_response(
        self,
        target: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The server's whole answer: `{"result", "hashes", "stats"}`."""
        kwargs = kwargs or {}
        cache = self.collect_cache(target, args, kwargs) if self.send_cache else {}
        payload: dict[str, Any] = {"args": list(args), "kwargs": kwargs}
        headers = {}
        if cache:
            payload["cache"] = cache
        body = dump_json(payload)
        if cache and self.secret is not None:
            headers[SIGNATURE_HEADER] = sign_body(body, self.secret)
        return self._request("POST", f"/v1/run/{target}", body, headers)  # type: ignore[no-any-return]

    def dry_run(self, target: str, /, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """What the server would load and compute: `[{"hash", "task", "index", "cached"}]`."""
        body = dump_json({"args": list(args), "kwargs": kwargs})
        return self._request("POST", f"/v1/dry-run/{target}", body)["outputs"]  # type: ignore[no-any-return]

    def dry_run_local(self, target: str, /, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """The same list, computed here against the local repo's cache (nothing runs)."""
        repo = self._local_repo()
        with use_session(Session(repo, pending_writes=[])) as session:
            result = self._pipeline(target).call(list(args), dict(kwargs))
            roots = root_nodes(result, (w.source for w in session.pending_writes or []))
            return dry_run_outputs(roots, repo.cache)

    def collect_cache(
        self, target: str, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """Values of outputs the server lacks and the local cache holds (out_hash -> value).

        Only the outputs the server would otherwise compute are sent: below an output the
        server has (or one sent), nothing more is needed.
        """
        missing = {o["hash"] for o in self.dry_run(target, *args, **kwargs) if not o["cached"]}
        if not missing:
            return {}
        repo = self._local_repo()
        with use_session(Session(repo, pending_writes=[])) as session:
            result = self._pipeline(target).call(list(args), dict(kwargs))
            roots = root_nodes(result, (w.source for w in session.pending_writes or []))
            return _cached_values(roots, missing, repo.cache)

    def _local_repo(self) -> Repo:
        if isinstance(self._repo, Repo):
            return self._repo
        self._repo = Repo.find(self._repo)
        return self._repo

    def _pipeline(self, target: str) -> Pipeline:
        if target not in self._pipelines:
            self._pipelines[target] = Pipeline.load(target)
        return self._pipelines[target]

    def _request(
        self, method: str, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> Any:
        import httpx

        try:
            response = self._http.request(
                method,
                path,
                content=body or None,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
        except httpx.HTTPError as exc:
            raise ServerError(
                f"cannot reach the merkl server at {self.url}: {exc}",
                status=None,
                error=str(exc),
                task=None,
            ) from exc
        try:
            data = response.json()
        except ValueError:
            data = {"error": response.text[:200]}
        if response.status_code != 200:
            error = data.get("error", "") if isinstance(data, dict) else str(data)
            task = data.get("task") if isinstance(data, dict) else None
            raise ServerError(
                f"{method} {self.url}{path}: HTTP {response.status_code}: {error}",
                status=response.status_code,
                error=error,
                task=task,
            )
        return data


def _cached_values(roots: list[Lazy], missing: set[str], cache: Cache) -> dict[str, Any]:
    values: dict[str, Any] = {}
    seen: set[Placeholder] = set()
    stack = [node for node in roots if isinstance(node, Placeholder)]
    while stack:
        node = stack.pop()
        out_hash = node.hash
        if node in seen or out_hash is None or out_hash not in missing:
            continue  # the server has it (or it is not in the server's graph at all)
        seen.add(node)
        entry = node.find_cached(cache)
        if entry is not None and entry.serializer == "json":
            values[out_hash] = cache.load(out_hash, entry)
            continue
        stack.extend(dep for dep in node.call.deps if isinstance(dep, Placeholder))
    return values
