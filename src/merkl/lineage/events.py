"""OpenLineage events (the client's own models) from lineage records (see `records`).

Imported where events are made: in the sender process, and by `merkl dag --format
openlineage`. It imports the OpenLineage client.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
from openlineage.client.serde import Serde

from merkl.lineage.facet import PRODUCER, MerklRunFacet

Record = dict[str, Any]


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _dataset_facets(dataset: Record) -> dict[str, DatasetFacet]:
    facets: dict[str, DatasetFacet] = {}
    if dataset.get("version"):
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=dataset["version"], producer=PRODUCER
        )
    if dataset.get("about"):
        facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(
            description=dataset["about"], producer=PRODUCER
        )
    return facets


def _job(record: Record) -> Job:
    facets: dict[str, JobFacet] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH",
            integration="MERKL",
            jobType=record["jobType"],
            producer=PRODUCER,
        )
    }
    return Job(record["namespace"], record["job"], facets=facets)


def _run_facets(record: Record) -> dict[str, RunFacet]:
    facets: dict[str, RunFacet] = {}
    parent = record.get("parent")
    if parent is not None:
        namespace = record["namespace"]
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent["runId"]),
            job=parent_run.Job(namespace=namespace, name=parent["job"]),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=parent["runId"]),
                job=parent_run.RootJob(namespace=namespace, name=parent["job"]),
            ),
            producer=PRODUCER,
        )
    if record.get("merkl") is not None:
        facets["merkl"] = MerklRunFacet(**record["merkl"], producer=PRODUCER)
    if record.get("error"):
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=record["error"], programmingLanguage="python", producer=PRODUCER
        )
    return facets


def event_from_record(record: Record) -> RunEvent | JobEvent:
    namespace = record["namespace"]
    common: dict[str, Any] = {
        "eventTime": iso(record["time"]),
        "job": _job(record),
        "inputs": [
            InputDataset(namespace, d["name"], facets=_dataset_facets(d)) for d in record["inputs"]
        ],
        "outputs": [
            OutputDataset(namespace, d["name"], facets=_dataset_facets(d))
            for d in record["outputs"]
        ],
        "producer": PRODUCER,
    }
    if record["kind"] == "job":
        return JobEvent(**common)
    return RunEvent(
        eventType=RunState(record["state"]),
        run=Run(record["runId"], facets=_run_facets(record)),
        **common,
    )


def to_json(event: RunEvent | JobEvent) -> str:
    return Serde.to_json(event)
