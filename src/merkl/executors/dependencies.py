"""Which calls of a plan wait for which: the bookkeeping every concurrent executor needs."""

from __future__ import annotations

from typing import Any

from merkl.cache.index import OutputEntry
from merkl.executors.base import ValueMap
from merkl.graph import Plan
from merkl.placeholder import Lazy, Placeholder
from merkl.tasks import Call


class CallDependencies:
    """The distinct calls to run, the producers of each, and which calls become ready when one
    finishes. Outputs the plan loads from a cache are never waited for.

    Two calls of the same task with the same arguments (`f(1)` written twice) have the same
    hashes: only the first runs, and its outputs are also the values of its `twins`.
    """

    def __init__(self, plan: Plan) -> None:
        self._canonical: dict[Call, Call] = {}
        self._twins: dict[Call, list[Call]] = {}
        by_hash: dict[str, Call] = {}
        for call in plan.calls:
            digest = call.outputs[0].hash
            first = by_hash.setdefault(digest, call) if digest is not None else call
            self._canonical[call] = first
            if first is not call:
                self._twins.setdefault(first, []).append(call)
        self._plan = plan
        self.calls: list[Call] = [c for c in plan.calls if self._canonical[c] is c]
        self.producers: dict[Call, list[Call]] = {}
        self._consumers: dict[Call, list[Call]] = {call: [] for call in self.calls}
        for call in self.calls:
            producers = list(
                dict.fromkeys(p for p in map(self.producer_of, call.deps) if p is not None)
            )
            self.producers[call] = producers
            for producer in producers:
                self._consumers[producer].append(call)
        self._waiting = {call: len(producers) for call, producers in self.producers.items()}

    def producer_of(self, dep: Lazy) -> Call | None:
        """The call of this run that computes `dep`; None for leaves and cached outputs."""
        if not isinstance(dep, Placeholder) or dep in self._plan.cached:
            return None
        return self._canonical.get(dep.call)

    def cached_entry(self, dep: Lazy) -> OutputEntry | None:
        """The cache entry the plan found for `dep` (None: computed here, or a leaf)."""
        return self._plan.cached.get(dep) if isinstance(dep, Placeholder) else None

    def twins(self, call: Call) -> list[Call]:
        """`call` and the other calls with the same hashes, whose outputs it also gives."""
        return [call, *self._twins.get(call, [])]

    def set_values(self, values: ValueMap, call: Call, outputs: list[Any]) -> None:
        """Record the outputs of `call` as the values of its and its twins' placeholders
        (those that are still to be read: see `ValueMap.put`)."""
        for twin in self.twins(call):
            for placeholder, value in zip(twin.outputs, outputs, strict=True):
                values.put(placeholder, value)

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
