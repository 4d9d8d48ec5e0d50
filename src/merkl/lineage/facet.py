"""merkl's custom run facet (`merkl`), described by MerklRunFacet.json shipped beside it."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import attr
from openlineage.client.facet_v2 import RunFacet

__version__ = version("merkl")

PRODUCER = f"https://pypi.org/project/merkl/{__version__}/"
SCHEMA_FILE = "MerklRunFacet.json"
# Where the schema file of this version is published with the package sources.
SCHEMA_URL = f"https://pypi.org/project/merkl/{__version__}/{SCHEMA_FILE}#/$defs/MerklRunFacet"


@attr.define
class MerklRunFacet(RunFacet):
    """A pipeline run: what ran and what came from cache. A task run: its hashes."""

    codeHash: str | None = attr.field(default=None)  # noqa: N815
    argsHash: str | None = attr.field(default=None)  # noqa: N815
    outputs: list[str] | None = attr.field(default=None)
    cached: bool = attr.field(default=False)
    durationSeconds: float | None = attr.field(default=None)  # noqa: N815
    tasksRun: int | None = attr.field(default=None)  # noqa: N815
    cachedOutputs: list[dict[str, Any]] | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL
