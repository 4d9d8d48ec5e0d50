"""Lineage records: what an OpenLineage event will say, as plain data built from merkl's DAG.

Built in the run's process (cheaply, no OpenLineage import) and turned into the client's event
objects by `events.event_from_record`, in the sender process (see `sender`) or, for
`merkl dag --format openlineage`, in place. One record is one event:

    {"kind": "run" | "job", "namespace", "job", "jobType": "PIPELINE" | "TASK", "time",
     "state": START | COMPLETE | FAIL, "runId", "pipelineRunId", "parent": {"runId", "job"},
     "inputs" / "outputs": [{"name", "version", "about"}], "merkl": {facet fields},
     "error": "Type: message"}

Naming: jobs are the pipeline (`module.function` for `merkl run`) and one per task
(`module.task`), in the `[lineage]` namespace (default `merkl://<repository folder name>`).
Datasets share the namespace: a file is named by its path relative to the repository (absolute
outside it) and versioned by its content hash (a `write_file`'s by the written bytes' hash,
once written); an output is named `output:<hash>` and versioned by its Merkle hash.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from merkl.executors.base import task_label
from merkl.files import FileOutput, FileRef, StoredOutput
from merkl.graph import Plan, iter_nodes
from merkl.lineage.run import PipelineRun
from merkl.placeholder import Lazy, Placeholder
from merkl.tasks import Call

Record = dict[str, Any]


def uuid7(timestamp: float) -> str:
    """A version 7 UUID (time-ordered, as OpenLineage recommends for run ids)."""
    value = (int(timestamp * 1000) & (1 << 48) - 1) << 80 | int.from_bytes(secrets.token_bytes(10))
    value = value & ~(0xF << 76) | 0x7 << 76  # version
    value = value & ~(0x3 << 62) | 0x2 << 62  # variant
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class Datasets:
    """Names and versions of the datasets of one repository."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def file_name(self, path: Path) -> str:
        absolute = Path(os.path.abspath(path))
        try:
            return absolute.relative_to(self.root).as_posix()
        except ValueError:
            return absolute.as_posix()

    def of(self, lazy: Lazy) -> Record | None:
        """The dataset a DAG node stands for; None for plain values (and unknown hashes)."""
        if isinstance(lazy, FileRef):
            return {"name": self.file_name(lazy.path), "version": lazy.hash}
        if isinstance(lazy, Placeholder) and lazy.hash:
            task = lazy.task
            about = f"output {lazy.index} of merkl task {task.module}.{task.name}"
            return {"name": f"output:{lazy.hash}", "version": lazy.hash, "about": about}
        if isinstance(lazy, StoredOutput):
            return {"name": f"output:{lazy.hash}", "version": lazy.hash}
        return None

    def of_all(self, nodes: Iterable[Lazy]) -> list[Record]:
        found = (self.of(node) for node in dict.fromkeys(nodes))
        return list({d["name"]: d for d in found if d is not None}.values())

    def written(self, writes: Iterable[FileOutput], *, done: bool) -> list[Record]:
        """Files of `write_file`; once written (`done`) versioned by their bytes' hash, before
        that unversioned, so what an event says does not depend on when it is built."""
        return [
            {"name": self.file_name(w.path), "version": w.oid if done else None}
            for w in dict.fromkeys(writes)
        ]


def pipeline_nodes(targets: list[Lazy]) -> tuple[list[Lazy], list[Lazy]]:
    """(inputs, outputs) of a pipeline: the files and stored outputs its DAG reads, and the
    outputs it returns or writes to files."""
    roots = [t.source if isinstance(t, FileOutput) else t for t in targets]
    inputs: list[Lazy] = [n for n in iter_nodes(roots) if isinstance(n, (FileRef, StoredOutput))]
    return inputs, roots


def writes_of(targets: list[Lazy], call: Call | None = None) -> list[FileOutput]:
    """The `write_file` targets (of `call`'s outputs only, if given)."""
    return [
        t for t in targets if isinstance(t, FileOutput) and (call is None or t.source.call is call)
    ]


def job_name(call: Call) -> str:
    return f"{call.task.module}.{call.task.name}"


def failed_call(plans: list[Plan], error: BaseException) -> Call | None:
    """The call whose body raised `error`, from the note every executor adds to it."""
    notes = set(getattr(error, "__notes__", ()))
    for plan in plans:
        for call in plan.calls:
            if f"in merkl task {task_label(call)}" in notes:
                return call
    return None


def end_state(error: BaseException | None) -> str:
    """COMPLETE, FAIL, or ABORT for an interruption (Ctrl-C, SystemExit) rather than an error."""
    if error is None:
        return "COMPLETE"
    return "FAIL" if isinstance(error, Exception) else "ABORT"


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class RunRecorder:
    """The records of one pipeline run, made in order (on the emitter thread)."""

    def __init__(self, run: PipelineRun) -> None:
        self.run = run
        self.datasets = Datasets(run.root)
        self.run_id = uuid7(run.started)

    def _base(self, kind: str, job: str, job_type: str, when: float) -> Record:
        return {
            "kind": kind,
            "namespace": self.run.settings.namespace,
            "job": job,
            "jobType": job_type,
            "time": when,
            "pipelineRunId": self.run_id,
        }

    def _pipeline(self, state: str, when: float, done: bool) -> Record:
        inputs, outputs = pipeline_nodes(self.run.targets)
        written = self.datasets.written(writes_of(self.run.targets), done=done)
        return {
            **self._base("run", self.run.name, "PIPELINE", when),
            "state": state,
            "runId": self.run_id,
            "inputs": self.datasets.of_all(inputs),
            "outputs": self.datasets.of_all(outputs) + written,
        }

    def pipeline_start(self) -> list[Record]:
        return [self._pipeline("START", self.run.started, done=False)]

    def pipeline_end(self, ended: float, error: BaseException | None) -> list[Record]:
        run = self.run
        records = []
        if error is not None:
            failed = failed_call(run.plans, error)
            if failed is not None:
                records += self.task_events(failed, ended, None, error)
        executed = {c.outputs[0].hash for plan in run.plans for c in plan.calls}
        cached = [p for plan in run.plans for p in plan.cached]
        if not run.plans and error is None:  # the all-cached fast path makes no plan
            cached = [t for t in run.targets if isinstance(t, Placeholder)]
        end = self._pipeline(end_state(error), ended, done=error is None)
        end["merkl"] = {
            "cached": error is None and not executed,
            "tasksRun": len(executed),
            "cachedOutputs": [
                {"job": f"{p.task.module}.{p.task.name}", "index": p.index, "output": p.hash}
                for p in dict.fromkeys(cached)
            ],
        }
        if error is not None:
            end["error"] = error_text(error)
        return [*records, end]

    def task_events(
        self,
        call: Call,
        ended: float,
        duration: float | None,
        error: BaseException | None = None,
    ) -> list[Record]:
        """START and COMPLETE (or FAIL) of one executed call, a child of the pipeline run.

        Both are made once the call has finished; the START carries its start time.
        """
        started = ended - duration if duration is not None else ended
        base = self._base("run", job_name(call), "TASK", started)
        base["runId"] = uuid7(started)
        base["parent"] = {"runId": self.run_id, "job": self.run.name}
        base["inputs"] = self.datasets.of_all(call.deps)
        written = self.datasets.written(writes_of(self.run.targets, call), done=False)
        base["outputs"] = self.datasets.of_all(call.outputs) + written
        end = {**base, "state": "FAIL" if error else "COMPLETE", "time": ended}
        end["merkl"] = {
            "cached": False,
            "codeHash": call.task.code_hash,
            "argsHash": call.args_hash,
            "outputs": [p.hash for p in call.outputs if p.hash],
            "durationSeconds": duration,
        }
        if error is not None:
            end["error"] = error_text(error)
        return [{**base, "state": "START"}, end]


def planned_records(namespace: str, root: Path, name: str, targets: list[Lazy]) -> list[Record]:
    """The lineage a pipeline would produce, as job records: one per task call, then one for
    the pipeline. Nothing runs; versions are the hashes known before running."""
    datasets = Datasets(root)
    roots = [t.source if isinstance(t, FileOutput) else t for t in targets]
    calls = list(dict.fromkeys(n.call for n in iter_nodes(roots) if isinstance(n, Placeholder)))
    now = time.time()
    records = []
    for call in calls:
        written = datasets.written(writes_of(targets, call), done=False)
        records.append(
            {
                "kind": "job",
                "namespace": namespace,
                "job": job_name(call),
                "jobType": "TASK",
                "time": now,
                "inputs": datasets.of_all(call.deps),
                "outputs": datasets.of_all(call.outputs) + written,
            }
        )
    inputs, outputs = pipeline_nodes(targets)
    records.append(
        {
            "kind": "job",
            "namespace": namespace,
            "job": name,
            "jobType": "PIPELINE",
            "time": now,
            "inputs": datasets.of_all(inputs),
            "outputs": datasets.of_all(outputs) + datasets.written(writes_of(targets), done=False),
        }
    )
    return records
