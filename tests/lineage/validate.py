"""Check received lineage events against the OpenLineage client's own models.

Each event is rebuilt from its JSON with the client's attrs classes (whose validators check the
event time, run ids, producer and schema URLs) and serialized back with the client's Serde: the
result must equal what was received, so the event holds nothing the models do not describe.
The `merkl` facet is checked against the JSON schema merkl ships.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
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
    dataset_version_dataset,
    documentation_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    tags_run,
)
from openlineage.client.serde import Serde

from merkl.lineage.facet import MerklRunFacet


def merkl_facet_schema() -> dict[str, Any]:
    text = resources.files("merkl.lineage").joinpath("MerklRunFacet.json").read_text()
    schema = json.loads(text)
    return {**schema["$defs"]["MerklRunFacet"], "$defs": schema["$defs"]}


def _base(facet: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in facet.items() if not k.startswith("_")}
    return {"producer": facet["_producer"], **fields}


def _parent(facet: dict[str, Any]) -> parent_run.ParentRunFacet:
    root = facet.get("root")
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=facet["run"]["runId"]),
        job=parent_run.Job(namespace=facet["job"]["namespace"], name=facet["job"]["name"]),
        root=None
        if root is None
        else parent_run.Root(
            run=parent_run.RootRun(runId=root["run"]["runId"]),
            job=parent_run.RootJob(namespace=root["job"]["namespace"], name=root["job"]["name"]),
        ),
        producer=facet["_producer"],
    )


def _tags(facet: dict[str, Any]) -> tags_run.TagsRunFacet:
    return tags_run.TagsRunFacet(
        tags=[tags_run.TagsRunFacetFields(**tag) for tag in facet["tags"]],
        producer=facet["_producer"],
    )


def _merkl(facet: dict[str, Any]) -> MerklRunFacet:
    jsonschema.validate(facet, merkl_facet_schema())
    return MerklRunFacet(**_base(facet))


FACETS: dict[str, Any] = {
    "parent": _parent,
    "tags": _tags,
    "merkl": _merkl,
    "errorMessage": lambda f: error_message_run.ErrorMessageRunFacet(**_base(f)),
    "jobType": lambda f: job_type_job.JobTypeJobFacet(**_base(f)),
    "version": lambda f: dataset_version_dataset.DatasetVersionDatasetFacet(**_base(f)),
    "documentation": lambda f: documentation_dataset.DocumentationDatasetFacet(**_base(f)),
}


def _facets(facets: dict[str, Any] | None) -> dict[str, Any]:
    rebuilt = {}
    for key, facet in (facets or {}).items():
        assert key in FACETS, f"unexpected facet {key!r}"
        rebuilt[key] = FACETS[key](facet)
    return rebuilt


def rebuild(event: dict[str, Any]) -> RunEvent | JobEvent:
    job = Job(
        event["job"]["namespace"], event["job"]["name"], facets=_facets(event["job"].get("facets"))
    )
    inputs = [
        InputDataset(d["namespace"], d["name"], facets=_facets(d.get("facets")))
        for d in event.get("inputs", [])
    ]
    outputs = [
        OutputDataset(d["namespace"], d["name"], facets=_facets(d.get("facets")))
        for d in event.get("outputs", [])
    ]
    common = {
        "eventTime": event["eventTime"],
        "producer": event["producer"],
        "job": job,
        "inputs": inputs,
        "outputs": outputs,
    }
    if "run" in event:
        run = Run(event["run"]["runId"], facets=_facets(event["run"].get("facets")))
        return RunEvent(eventType=RunState(event["eventType"]), run=run, **common)
    return JobEvent(**common)


def check_event(event: dict[str, Any]) -> None:
    """Raise unless `event` is exactly what the client's models make of it."""
    rebuilt = rebuild(event)
    assert event["schemaURL"] == rebuilt.schemaURL
    assert json.loads(Serde.to_json(rebuilt)) == event
