"""Store the cached values a client sent with a signed run request.

A value is accepted only for an output of the request's own graph: the output tells which task
serializer and cache policy apply, and the value is stored like a computed output (serialized by
that serializer, saved through the cache, logged). Values are checked all together first, so a
request with one bad value stores none. An output already cached keeps its value: first writer
wins, as in the index.
"""

from __future__ import annotations

import time
from typing import Any

from merkl.cache import CachePolicy
from merkl.cache.index import RunRecord
from merkl.graph import iter_nodes
from merkl.placeholder import Lazy, Placeholder
from merkl.repo import Repo
from merkl.serializers import Serializer
from merkl.serve.payload import RequestError
from merkl.serve.pipeline import output_name


def store_client_values(
    name: str,
    values: dict[str, Any],
    roots: list[Lazy],
    repo: Repo,
    *,
    allow_unsafe: bool = False,
) -> int:
    """Cache `values` (output hash -> value) for outputs of `roots`; return how many were new.

    Raises:
        RequestError: 422 for a hash outside the graph or a value its serializer refuses; 403
            for an output whose serializer is unsafe (pickle) unless `allow_unsafe`.
    """
    outputs = {node.hash: node for node in iter_nodes(roots) if isinstance(node, Placeholder)}
    items: list[tuple[str, Any, Serializer, CachePolicy]] = []
    runs: list[RunRecord] = []
    now = time.time()
    for out_hash, value in values.items():
        node = outputs.get(out_hash)
        if node is None:
            raise RequestError(
                422,
                f"cache: {out_hash} is not the hash of an output of {name} with these "
                f"arguments; POST /v1/dry-run/{name} lists the hashes it has",
            )
        task = node.task
        serializer, policy = task.serializer(node.index), task.policy(node.index)
        if not serializer.is_safe and not allow_unsafe:
            raise RequestError(
                403,
                f"cache: output {out_hash[:12]} of {output_name(node)} uses the "
                f"{serializer.name!r} serializer, and this server takes no client values for "
                f"it (start it with --allow-unsafe-values to allow that)",
            )
        if policy is CachePolicy.NEVER or repo.cache.find(out_hash, policy) is not None:
            continue
        try:
            serializer.dump(value)  # refuse now, before anything is stored
        except Exception as exc:  # any serializer, any value: the client's input is at fault
            raise RequestError(
                422,
                f"cache: the value sent for output {out_hash[:12]} of {output_name(node)} "
                f"does not fit its {serializer.name!r} serializer: {exc}",
            ) from None
        items.append((out_hash, value, serializer, policy))
        parents = sorted({dep.hash for dep in node.call.deps if dep.hash})
        runs.append(
            RunRecord(
                out_hash,
                node.index,
                task.name,
                task.module,
                task.code_hash,
                node.call.args_hash or "",
                node.call.arg_hashes(),
                parents,
                0.0,
                0,
                now,
            )
        )
    if items:
        repo.cache.save(items, runs)
    return len(items)
