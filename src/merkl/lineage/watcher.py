"""The evaluation watcher that records a run for the emitter: cheap in the run's thread.

The run's thread only appends plans and queues (call, end time, duration); the emitter thread
makes the records and the sender process the events.
"""

from __future__ import annotations

import time

from merkl.graph import Plan
from merkl.lineage.emitter import Emitter
from merkl.lineage.run import PipelineRun
from merkl.tasks import Call


class LineageWatcher:
    """Watches one top-level evaluation (see `merkl.observers`)."""

    def __init__(self, emitter: Emitter, run: PipelineRun) -> None:
        self.emitter = emitter
        self.run = run
        emitter.submit(run, "pipeline_start")

    def planned(self, plan: Plan) -> None:
        self.run.plans.append(plan)

    def call_finished(self, call: Call, duration: float) -> None:
        self.emitter.submit(self.run, "task_events", call, time.time(), duration)

    def finished(self, error: BaseException | None) -> None:
        self.emitter.submit(self.run, "pipeline_end", time.time(), error)
