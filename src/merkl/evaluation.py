"""Evaluate lazy values: plan against the cache, load what is cached, run the rest."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from merkl.cache.lock import shared_lock
from merkl.errors import CacheMissError, CorruptObjectError
from merkl.executors import get_executor
from merkl.executors.base import Executor, ValueMap
from merkl.graph import Plan, make_plan
from merkl.observers import RUN_HOOKS, planned, should_watch, watch_evaluation
from merkl.placeholder import NOT_CACHED, NOT_FOUND, Lazy, Placeholder, cached_value, cached_values
from merkl.session import Session, current_session
from merkl.tasks import iter_lazy, substitute


@dataclass
class EvalStats:
    """Counts filled in by `evaluate` for summaries."""

    ran: int = 0  # task calls executed
    loaded: int = 0  # outputs found in a cache


def evaluate(
    targets: Iterable[Lazy],
    *,
    executor: Executor | str | None = None,
    session: Session | None = None,
    stats: EvalStats | None = None,
    pipeline: str | None = None,
) -> list[Any]:
    """Values of `targets`, computing only what no cache holds.

    Args:
        targets: placeholders (or other lazy values such as `merkl.path(...)`).
        executor: an `Executor`, a registered name (`"local"`), or None for in-process.
        session: defaults to the current session (the repo found from the working directory).
        stats: if given, incremented with the number of calls run and outputs loaded.
        pipeline: the name lineage events give this evaluation (`merkl run` passes its
            target); by default `evaluate:` and the first target's task.
    """
    session = session or current_session()
    targets = list(targets)
    if not should_watch():
        return _evaluate(targets, executor, session, stats)
    with watch_evaluation(targets, session, pipeline):
        return _evaluate(targets, executor, session, stats)


def evaluate_one(target: Lazy, executor: Executor | str | None = None) -> Any:
    """`evaluate([target], executor=executor)[0]` (`Lazy.get`): a cached task output is
    loaded without the lists of an evaluation."""
    if executor is None and type(target) is Placeholder and not should_watch():
        session = current_session()
        missed: frozenset[Lazy] = frozenset()
        if session.use_cache:
            value = cached_value(target, session.require_repo().cache)
            if value is NOT_FOUND:
                missed = frozenset((target,))  # the plan need not ask again
            elif value is not NOT_CACHED:
                return value
        return _compute([target], None, session, None, missed)[0]
    return evaluate([target], executor=executor)[0]


def _evaluate(
    targets: list[Lazy],
    executor: Executor | str | None,
    session: Session,
    stats: EvalStats | None,
) -> list[Any]:
    if session.use_cache and executor is None:
        hits = _all_cached(targets, session)
        if hits is not None:
            if stats is not None:
                stats.loaded += len(hits)
            return hits
    return _compute(targets, executor, session, stats)


def _compute(
    targets: list[Lazy],
    executor: Executor | str | None,
    session: Session,
    stats: EvalStats | None,
    missed: frozenset[Lazy] = frozenset(),
) -> list[Any]:
    """Plan `targets` against the cache and run what it lacks (some may be cached); `missed`
    as `make_plan` takes it."""
    from merkl.files import FileOutput

    writes = [t for t in targets if isinstance(t, FileOutput)]
    needed = [t.source if isinstance(t, FileOutput) else t for t in targets]
    repo = session.require_repo() if session.use_cache else None
    cache = repo.cache if repo is not None else None
    # Held shared while the plan's cached outputs are read: eviction and gc skip or wait.
    with shared_lock(repo, None) if repo is not None else contextlib.nullcontext():
        plan = make_plan(needed, cache, missed)
        planned(plan)
        if stats is not None:
            stats.ran += len({call.outputs[0].hash for call in plan.calls})  # twins run once
            stats.loaded += len(plan.cached)
        values = ValueMap(lambda node: _load(node, plan, session), keep=needed)
        with cache.batched() if cache is not None else contextlib.nullcontext():
            get_executor(executor).run(plan, values, session)
        results = {w: w.write(values[w.source], session) for w in writes}
        found = [results[t] if t in results else values[t] for t in targets]
    if repo is not None and plan.calls:
        for hook in RUN_HOOKS:
            hook(repo)
    return found


def evaluate_value(value: Any, **options: Any) -> Any:
    """`value` (e.g. a pipeline's return value) with every lazy value inside it evaluated."""
    lazies = list(dict.fromkeys(iter_lazy(value)))
    if not lazies:
        return value
    results = dict(zip(lazies, evaluate(lazies, **options), strict=True))
    return substitute(value, results)


def _all_cached(targets: list[Lazy], session: Session) -> list[Any] | None:
    """The targets' values when every one is a cached task output (the common hit path,
    which needs no plan); None as soon as one is not."""
    for target in targets:
        if type(target) is not Placeholder or target.hash is None:
            return None
    return cached_values(targets, session.require_repo().cache)  # type: ignore[arg-type]


def _load(node: Lazy, plan: Plan, session: Session) -> Any:
    entry = plan.cached.get(node) if isinstance(node, Placeholder) else None
    if entry is None:
        return node.resolve(session)
    cache = session.require_repo().cache
    try:
        return cache.load(node.hash or "", entry)
    except (CacheMissError, CorruptObjectError):
        # The object vanished or was corrupt (and was dropped): compute it again.
        return evaluate([node], session=session)[0]
