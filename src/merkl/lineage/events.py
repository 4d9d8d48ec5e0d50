"""OpenLineage events from merkl's DAG: runs, jobs and datasets named by content hash.

- Jobs: the pipeline (`module.function` for `merkl run`) and one per task (`module.task`), in
  the namespace of `[lineage]` (default `merkl://<repository folder name>`).
- Datasets, in that namespace too: a file by its path relative to the repository (absolute
  outside it), an output by `output:<hash>`; each carries a `version` facet, the content hash
  for a file (the written bytes' hash for a `write_file`), the Merkle hash for an output.

Imported only when lineage is configured (or by `merkl dag --format openlineage`): it imports
the OpenLineage client.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    JobEvent,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import (
    DatasetFacet,
    JobFacet,
    RunFacet,
    dataset_version_dataset,
    documentation_dataset,
    error_message_run,
    job_type_job,
    parent_run,
)
from openlineage.client.uuid import generate_new_uuid

from merkl.executors.base import task_label
from merkl.files import FileOutput, FileRef, StoredOutput
from merkl.graph import Plan, iter_nodes
from merkl.lineage.config import LineageSettings
from merkl.lineage.facet import PRODUCER, MerklRunFacet
from merkl.lineage.run import PipelineRun
from merkl.placeholder import Lazy, Placeholder
from merkl.tasks import Call


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


class Datasets:
    """Names and facets of the datasets of one repository."""

    def __init__(self, namespace: str, root: Path) -> None:
        self.namespace = namespace
        self.root = root

    def file_name(self, path: Path) -> str:
        absolute = Path(os.path.abspath(path))
        try:
            return absolute.relative_to(self.root).as_posix()
        except ValueError:
            return absolute.as_posix()

    def facets(self, version: str | None, about: str | None = None) -> dict[str, DatasetFacet]:
        facets: dict[str, DatasetFacet] = {}
        if version:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=version, producer=PRODUCER
            )
        if about:
            facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(
                description=about, producer=PRODUCER
            )
        return facets

    def of(self, lazy: Lazy) -> tuple[str, dict[str, DatasetFacet]] | None:
        """(name, facets) of a DAG node that is a dataset; None for plain values."""
        if isinstance(lazy, FileRef):
            return self.file_name(lazy.path), self.facets(lazy.hash)
        if isinstance(lazy, Placeholder) and lazy.hash:
            return f"output:{lazy.hash}", self.facets(lazy.hash, _output_about(lazy))
        if isinstance(lazy, StoredOutput):
            return f"output:{lazy.hash}", self.facets(lazy.hash)
        return None

    def written(self, writes: Iterable[FileOutput], *, done: bool) -> list[OutputDataset]:
        """Files of `write_file`; with `done` (the evaluation has written them) their version
        is the written bytes' hash, before that they have none, so that what an event says does
        not depend on when the emitter thread builds it."""
        return [
            OutputDataset(
                self.namespace, self.file_name(w.path), facets=self.facets(w.oid if done else None)
            )
            for w in dict.fromkeys(writes)
        ]

    def inputs(self, nodes: Iterable[Lazy]) -> list[InputDataset]:
        found = (self.of(node) for node in dict.fromkeys(nodes))
        return [InputDataset(self.namespace, n, facets=f) for n, f in _unique(found)]

    def outputs(self, nodes: Iterable[Lazy]) -> list[OutputDataset]:
        found = (self.of(node) for node in dict.fromkeys(nodes))
        return [OutputDataset(self.namespace, n, facets=f) for n, f in _unique(found)]


def _unique(
    found: Iterator[tuple[str, dict[str, DatasetFacet]] | None],
) -> list[tuple[str, dict[str, DatasetFacet]]]:
    named = {item[0]: item for item in found if item is not None}
    return list(named.values())


def _output_about(placeholder: Placeholder) -> str:
    task = placeholder.task
    return f"output {placeholder.index} of merkl task {task.module}.{task.name}"


def job_name(call: Call) -> str:
    return f"{call.task.module}.{call.task.name}"


def _job_facets(kind: str) -> dict[str, JobFacet]:
    return {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="MERKL", jobType=kind, producer=PRODUCER
        )
    }


def pipeline_nodes(targets: list[Lazy]) -> tuple[list[Lazy], list[Lazy]]:
    """(inputs, outputs) of a pipeline run: the files and stored outputs its DAG reads, the
    outputs it returns or writes to files."""
    roots = [t.source if isinstance(t, FileOutput) else t for t in targets]
    inputs: list[Lazy] = [n for n in iter_nodes(roots) if isinstance(n, (FileRef, StoredOutput))]
    return inputs, roots


def writes_of(targets: list[Lazy], call: Call | None = None) -> list[FileOutput]:
    """The `write_file` targets (of `call`'s outputs only, if given)."""
    return [
        t for t in targets if isinstance(t, FileOutput) and (call is None or t.source.call is call)
    ]


class EventBuilder:
    """Builds the events of one pipeline run (called on the emitter thread, in order)."""

    def __init__(self, run: PipelineRun) -> None:
        self.run = run
        self.datasets = Datasets(run.settings.namespace, run.root)

    def _job(self, name: str, kind: str) -> Job:
        return Job(self.run.settings.namespace, name, facets=_job_facets(kind))

    def pipeline_start(self) -> list[RunEvent]:
        run = self.run
        run.run_id = str(generate_new_uuid(datetime.fromtimestamp(run.started, UTC)))
        inputs, outputs = pipeline_nodes(run.targets)
        return [
            RunEvent(
                eventType=RunState.START,
                eventTime=iso(run.started),
                run=Run(run.run_id),
                job=self._job(run.name, "PIPELINE"),
                inputs=self.datasets.inputs(inputs),
                outputs=self.outputs(outputs, writes_of(run.targets), done=False),
                producer=PRODUCER,
            )
        ]

    def outputs(
        self, nodes: list[Lazy], writes: list[FileOutput], *, done: bool
    ) -> list[OutputDataset]:
        return self.datasets.outputs(nodes) + self.datasets.written(writes, done=done)

    def pipeline_end(self, ended: float, error: BaseException | None) -> list[RunEvent]:
        run = self.run
        events = []
        if error is not None:
            failed = failed_call(run.plans, error)
            if failed is not None:
                events += self.task_events(failed, ended, None, error)
        executed = {c.outputs[0].hash for plan in run.plans for c in plan.calls}
        cached = [p for plan in run.plans for p in plan.cached]
        if not run.plans and error is None:  # the all-cached fast path makes no plan
            cached = [t for t in run.targets if isinstance(t, Placeholder)]
        facets: dict[str, RunFacet] = {
            "merkl": MerklRunFacet(
                cached=error is None and not executed,
                tasksRun=len(executed),
                cachedOutputs=[
                    {"job": f"{p.task.module}.{p.task.name}", "index": p.index, "output": p.hash}
                    for p in dict.fromkeys(cached)
                ],
                producer=PRODUCER,
            )
        }
        if error is not None:
            facets["errorMessage"] = _error_facet(error)
        inputs, outputs = pipeline_nodes(run.targets)
        events.append(
            RunEvent(
                eventType=RunState.COMPLETE if error is None else RunState.FAIL,
                eventTime=iso(ended),
                run=Run(run.run_id, facets=facets),
                job=self._job(run.name, "PIPELINE"),
                inputs=self.datasets.inputs(inputs),
                outputs=self.outputs(outputs, writes_of(run.targets), done=error is None),
                producer=PRODUCER,
            )
        )
        return events

    def task_events(
        self,
        call: Call,
        ended: float,
        duration: float | None,
        error: BaseException | None = None,
    ) -> list[RunEvent]:
        """START and COMPLETE (or FAIL) of one executed call, as a child of the pipeline run.

        Both are built when the call has finished: the START carries its start time.
        """
        run = self.run
        started = ended - duration if duration is not None else ended
        run_id = str(generate_new_uuid(datetime.fromtimestamp(started, UTC)))
        parent = _parent_facet(run.settings.namespace, run.name, run.run_id)
        merkl = MerklRunFacet(
            codeHash=call.task.code_hash,
            argsHash=call.args_hash,
            outputs=[p.hash for p in call.outputs if p.hash],
            durationSeconds=duration,
            producer=PRODUCER,
        )
        start_facets: dict[str, RunFacet] = {"parent": parent}
        end_facets: dict[str, RunFacet] = {"parent": parent, "merkl": merkl}
        if error is not None:
            end_facets["errorMessage"] = _error_facet(error)
        outputs = self.outputs(list(call.outputs), writes_of(run.targets, call), done=False)
        inputs = self.datasets.inputs(call.deps)
        job = self._job(job_name(call), "TASK")
        return [
            RunEvent(
                eventType=state,
                eventTime=iso(when),
                run=Run(run_id, facets=facets),
                job=job,
                inputs=inputs,
                outputs=outputs,
                producer=PRODUCER,
            )
            for state, when, facets in (
                (RunState.START, started, start_facets),
                (RunState.FAIL if error else RunState.COMPLETE, ended, end_facets),
            )
        ]


def failed_call(plans: list[Plan], error: BaseException) -> Call | None:
    """The call whose body raised `error`, from the note every executor adds to it."""
    notes = set(getattr(error, "__notes__", ()))
    for plan in plans:
        for call in plan.calls:
            if f"in merkl task {task_label(call)}" in notes:
                return call
    return None


def _parent_facet(namespace: str, name: str, run_id: str) -> parent_run.ParentRunFacet:
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=run_id),
        job=parent_run.Job(namespace=namespace, name=name),
        root=parent_run.Root(
            run=parent_run.RootRun(runId=run_id),
            job=parent_run.RootJob(namespace=namespace, name=name),
        ),
        producer=PRODUCER,
    )


def _error_facet(error: BaseException) -> error_message_run.ErrorMessageRunFacet:
    return error_message_run.ErrorMessageRunFacet(
        message=f"{type(error).__name__}: {error}",
        programmingLanguage="python",
        producer=PRODUCER,
    )


def planned_events(
    settings: LineageSettings, root: Path, name: str, targets: list[Lazy]
) -> list[JobEvent]:
    """The lineage a pipeline would produce, as JobEvents: one per task call, one for the
    pipeline. Nothing runs; versions are the hashes known before running."""
    datasets = Datasets(settings.namespace, root)
    roots = [t.source if isinstance(t, FileOutput) else t for t in targets]
    calls = list(dict.fromkeys(n.call for n in iter_nodes(roots) if isinstance(n, Placeholder)))
    now = iso(datetime.now(UTC).timestamp())
    events = []
    for call in calls:
        outputs = datasets.outputs(call.outputs)
        outputs += datasets.written(writes_of(targets, call), done=False)
        events.append(
            JobEvent(
                eventTime=now,
                job=Job(settings.namespace, job_name(call), facets=_job_facets("TASK")),
                inputs=datasets.inputs(call.deps),
                outputs=outputs,
                producer=PRODUCER,
            )
        )
    inputs, produced = pipeline_nodes(targets)
    events.append(
        JobEvent(
            eventTime=now,
            job=Job(settings.namespace, name, facets=_job_facets("PIPELINE")),
            inputs=datasets.inputs(inputs),
            outputs=datasets.outputs(produced) + datasets.written(writes_of(targets), done=False),
            producer=PRODUCER,
        )
    )
    return events


def to_json(event: Any) -> str:
    from openlineage.client.serde import Serde

    return Serde.to_json(event)
