"""Watchers of evaluations: how a layer above (lineage) learns what an evaluation ran.

The package registers a hook in `EVALUATION_HOOKS`; each top-level `evaluate` asks every hook
for a watcher and tells the watchers what it planned, each call it executed and how it ended.
An evaluation started inside another (a task body calling `.get()`, a corrupt cached object
recomputed) reports to the outer one's watchers. With no hook, or every hook answering None,
an evaluation costs one context-variable lookup per executed call.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: `import merkl` imports this module, so it stays small
    from collections.abc import Callable
    from types import TracebackType
    from typing import Protocol

    from merkl.graph import Plan
    from merkl.placeholder import Lazy
    from merkl.repo import Repo
    from merkl.session import Session
    from merkl.tasks import Call

    class EvaluationWatcher(Protocol):
        def planned(self, plan: Plan) -> None:
            """The evaluation (or one nested in it) will run `plan.calls`, load `plan.cached`."""

        def call_finished(self, call: Call, duration: float) -> None:
            """`call` ran for `duration` seconds; its outputs are about to be stored."""

        def finished(self, error: BaseException | None) -> None:
            """The evaluation returned (error None) or raised `error`."""

    # (targets, session, pipeline name or None) -> a watcher for that evaluation, or None.
    EvaluationHook = Callable[[list[Lazy], Session, str | None], EvaluationWatcher | None]

EVALUATION_HOOKS: list[EvaluationHook] = []

# Called with the repository after an evaluation that ran calls, once it no longer holds the
# repository lock: the package applies `[cache]` limits there (`merkl.ops.evict`).
RUN_HOOKS: list[Callable[[Repo], object]] = []

_watchers: contextvars.ContextVar[tuple[EvaluationWatcher, ...] | None] = contextvars.ContextVar(
    "merkl_evaluation_watchers", default=None
)


def should_watch() -> bool:
    """Whether an evaluation starting now is a top-level one that some hook may watch."""
    return bool(EVALUATION_HOOKS) and _watchers.get() is None


class watch_evaluation:  # noqa: N801 - used like a function: `with watch_evaluation(...):`
    """Around one top-level evaluation (see `should_watch`): open watchers, close them after.

    Evaluations nested in it find the watchers set and report their plans and calls to them.
    """

    def __init__(self, targets: list[Lazy], session: Session, pipeline: str | None) -> None:
        # A copy: a hook may replace or remove itself (the package's lineage hook does).
        found = [hook(targets, session, pipeline) for hook in tuple(EVALUATION_HOOKS)]
        self.watchers = tuple(w for w in found if w is not None)

    def __enter__(self) -> None:
        self.token = _watchers.set(self.watchers)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _watchers.reset(self.token)
        for watcher in self.watchers:
            watcher.finished(error)


def planned(plan: Plan) -> None:
    for watcher in _watchers.get() or ():
        watcher.planned(plan)


def call_finished(call: Call, duration: float) -> None:
    for watcher in _watchers.get() or ():
        watcher.call_finished(call, duration)
