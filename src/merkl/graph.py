"""Walk a DAG of lazy values: what is cached, what must run, in which order.

Shared by the executors, `merkl run --dry` and `merkl dag`. Walks are iterative, so a chain of
100,000 tasks does not hit the recursion limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from merkl.cache import Cache
from merkl.cache.index import OutputEntry
from merkl.placeholder import Lazy, Placeholder
from merkl.tasks import Call


@dataclass
class Plan:
    """The work needed to evaluate some targets."""

    calls: list[Call] = field(default_factory=list)  # to execute, dependencies first
    cached: dict[Placeholder, OutputEntry] = field(default_factory=dict)  # to load
    leaves: list[Lazy] = field(default_factory=list)  # files, stored outputs, missing args


def make_plan(
    targets: Iterable[Lazy], cache: Cache | None, missed: frozenset[Lazy] = frozenset()
) -> Plan:
    """Decide what to load and what to run; with `cache=None` everything runs.

    A cached output's upstream is never visited: the Merkle hash already vouches for it.
    `missed`: outputs the caller has just looked up and not found, not asked again (whoever
    stores one meanwhile holds its lease, which the executor takes and then looks again).
    """
    targets = list(targets)
    found = _find_reachable(targets, cache, missed) if cache is not None else {}
    plan = Plan()
    seen: set[Lazy] = set()
    queued: set[Call] = set()
    stack: list[tuple[bool, Lazy | Call]] = [(False, t) for t in reversed(list(targets))]
    while stack:
        is_done, item = stack.pop()
        if is_done:
            plan.calls.append(item)  # type: ignore[arg-type]
            continue
        if isinstance(item, Call):  # pragma: no cover - only Lazy are pushed unexpanded
            continue
        if item in seen:
            continue
        seen.add(item)
        if not isinstance(item, Placeholder):
            plan.leaves.append(item)
            continue
        call = item.call
        if call in queued:
            continue
        entry = found.get(item)
        if entry is not None:
            plan.cached[item] = entry
            continue
        queued.add(call)
        stack.append((True, call))
        stack.extend((False, dep) for dep in reversed(call.deps))
    return plan


def _find_reachable(
    targets: list[Lazy], cache: Cache, missed: frozenset[Lazy]
) -> dict[Placeholder, OutputEntry]:
    """The cache entries of the outputs `make_plan` visits (those reachable from the targets
    without passing a cached one), found level by level: one batched lookup per level of the
    DAG, not one query and one `stat` per output."""
    found: dict[Placeholder, OutputEntry] = {}
    seen: set[Lazy] = set()
    level = targets
    while level:
        level = [node for node in dict.fromkeys(level) if node not in seen]
        seen.update(level)
        hits = find_cached_many([n for n in level if n not in missed], cache)
        found.update(hits)
        level = [
            dep
            for node in level
            if isinstance(node, Placeholder) and node not in hits
            for dep in node.call.deps
        ]
    return found


def find_cached_many(nodes: Iterable[Lazy], cache: Cache) -> dict[Placeholder, OutputEntry]:
    """`Placeholder.find_cached` of every hashed placeholder among `nodes`, in batched lookups
    (`Cache.find_many`)."""
    outputs = [n for n in nodes if isinstance(n, Placeholder) and n.hash is not None]
    if not outputs:
        return {}
    found = cache.find_many(
        (p.hash or "", p.task.policy(p.index), p.task.serializer(p.index).name) for p in outputs
    )
    return {p: found[p.hash] for p in outputs if p.hash in found}


def iter_nodes(targets: Iterable[Lazy]) -> Iterator[Lazy]:
    """Every lazy value the targets depend on, each once, dependencies before dependents."""
    seen: set[Lazy] = set()
    stack: list[tuple[bool, Lazy]] = [(False, t) for t in reversed(list(targets))]
    while stack:
        is_done, node = stack.pop()
        if is_done:
            yield node
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((True, node))
        if isinstance(node, Placeholder):
            stack.extend((False, dep) for dep in reversed(node.call.deps))
