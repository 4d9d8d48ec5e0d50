"""`merkl dag --format openlineage`: the lineage a pipeline would produce, before it runs.

Planned lineage is written as OpenLineage JobEvents, one per task call and one for the
pipeline, one JSON document a line. JobEvents rather than RunEvents of type OTHER: nothing
ran, so there is no run to attach an event to (OTHER is for extra facts about a run that has
a START), and a consumer such as Marquez records JobEvents as the jobs' design-time inputs and
outputs without inventing runs. The dataset versions are the hashes merkl knows before running.
"""

from __future__ import annotations

import importlib.util

from merkl.errors import MerklError
from merkl.lineage.config import lineage_settings
from merkl.provenance.pipeline import Pipeline


def planned_lineage(pipeline: Pipeline) -> bytes:
    """NDJSON JobEvents of `pipeline` (called, not run).

    Raises:
        MerklError: openlineage-python is not installed.
        ConfigError: a bad `[lineage]` table in merkl.toml.
    """
    if importlib.util.find_spec("openlineage.client") is None:
        raise MerklError(
            "--format openlineage needs the OpenLineage client: pip install 'merkl[openlineage]'"
        )
    from merkl.lineage.events import event_from_record, to_json
    from merkl.lineage.records import planned_records

    settings = lineage_settings(pipeline.repo)
    targets = [*pipeline.roots, *pipeline.writes]
    records = planned_records(settings.namespace, pipeline.repo.root, pipeline.target, targets)
    return "".join(f"{to_json(event_from_record(r))}\n" for r in records).encode()
