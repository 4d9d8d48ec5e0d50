"""Which calls of a plan wait for which: the bookkeeping every concurrent executor needs."""

from __future__ import annotations

from merkl.graph import Plan
from merkl.placeholder import Placeholder
from merkl.task import Call


class CallDependencies:
    """Producers of each call among the calls to run, and which calls become ready when one
    finishes. Outputs the plan loads from a cache are never waited for."""

    def __init__(self, plan: Plan) -> None:
        to_run = set(plan.calls)
        self.producers: dict[Call, list[Call]] = {}
        self._consumers: dict[Call, list[Call]] = {call: [] for call in plan.calls}
        for call in plan.calls:
            producers = list(
                dict.fromkeys(
                    dep.call
                    for dep in call.deps
                    if isinstance(dep, Placeholder)
                    and dep not in plan.cached
                    and dep.call in to_run
                )
            )
            self.producers[call] = producers
            for producer in producers:
                self._consumers[producer].append(call)
        self._waiting = {call: len(producers) for call, producers in self.producers.items()}

    def initial(self) -> list[Call]:
        """Calls that need no other call's output, in plan order."""
        return [call for call, count in self._waiting.items() if count == 0]

    def finish(self, call: Call) -> list[Call]:
        """Record that `call` is done; return the calls that became ready."""
        ready = []
        for consumer in self._consumers[call]:
            self._waiting[consumer] -= 1
            if self._waiting[consumer] == 0:
                ready.append(consumer)
        return ready
