"""In-process sequential execution: the default; breakpoints and debuggers just work."""

from __future__ import annotations

from merkl.executors.base import Executor, ValueMap, call_body, store_outputs
from merkl.executors.dependencies import CallDependencies
from merkl.graph import Plan
from merkl.session import Session


class LocalExecutor(Executor):
    """Runs calls one after the other in this thread, dependencies first."""

    name = "local"

    def run(self, plan: Plan, values: ValueMap, session: Session) -> None:
        dependencies = CallDependencies(plan)  # `f(1)` written twice runs once
        for call in dependencies.calls:
            outputs, duration = call_body(call, values)
            stored = store_outputs(call, outputs, duration, session)
            dependencies.set_values(values, call, stored)
