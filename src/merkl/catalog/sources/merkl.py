"""The `merkl` source: this repository's tracked files and pipeline outputs, with lineage.

Assets (Meteor `Asset` records, like the `merlin` source's):

- every tracked file or directory (a pointer file in the work tree): `urn:merkl:{scope}:file:
  {path}`, type `model` when its path matches `model_patterns`, else `dataset`;
- every pipeline output such a file was written from (`write_file(..., track=True)` records it
  in the pointer), and every output upstream of it in the run log: `urn:merkl:{scope}:output:
  {hash}`, type `dataset`;
- every untracked input file those outputs read (`merkl.read_file`, `merkl.path`), found by its
  content hash in the stat cache: a `file` asset like a tracked one.

`lineage.upstreams` holds what each asset was made from: a written file's output, an output's
upstream outputs and input files. So `model.bin` → `output:<train>` → `output:<load_data>` →
`file:data/train.csv`. Data payloads: `Model` for models, `Table` (with only `attributes`)
for datasets; the attributes hold paths, hashes, sizes, tasks and code hashes.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections import deque
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from merkl.cache.index import RunRecord
from merkl.catalog.asset import (
    Asset,
    make_asset,
    make_data,
    make_model,
    make_model_version,
    make_resource,
    make_struct,
    make_urn,
)
from merkl.catalog.plugin import Emit, PluginConfig, PluginContext, PluginInfo, Source
from merkl.catalog.timestamp import TimestampError, format_timestamp, normalize_timestamp
from merkl.errors import CatalogError, NotARepoError
from merkl.hashing import HASH_PREFIX
from merkl.pointer import Pointer
from merkl.provenance.history import FileIndex, FileSource, RunLog
from merkl.repo import Repo

SERVICE = "merkl"
MODEL, DATASET = "model", "dataset"
DEFAULT_MODEL_PATTERNS = [
    "*.bin",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.onnx",
    "*.h5",
    "*.keras",
    "*.pkl",
    "*.pickle",
    "*.joblib",
    "*.safetensors",
    "*.gguf",
    "*.tflite",
    "models/*",
]

SAMPLE_CONFIG = """\
# The merkl repository (its root, or any folder inside it); relative to where merkl runs
path: .
# Tracked files whose path (or file name) matches one of these are models, others datasets
model_patterns:
  - "*.bin"
  - "*.pt"
  - "models/*"
"""


class MerklConfig(PluginConfig):
    path: str = Field(default=".", description="the merkl repository (root or a folder in it)")
    model_patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MODEL_PATTERNS),
        description="glob patterns of model files, matched against the path relative to the "
        "repository or, for patterns without '/', the file name; other files are datasets",
        json_schema_extra={"default": "*.bin, *.pt, *.onnx, *.pkl, models/*, …"},
    )

    @field_validator("model_patterns")
    @classmethod
    def _check_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not pattern.strip():
                raise ValueError("model_patterns: a pattern must not be empty")
        return patterns


class MerklSource(Source[MerklConfig]):
    """Tracked files and pipeline outputs of a merkl repository, with their lineage."""

    name = "merkl"
    Config = MerklConfig
    info = PluginInfo(
        description="Tracked files and pipeline outputs of a merkl repository, with lineage "
        "from the Merkle DAG (outputs → the outputs and files they were computed from)",
        sample_config=SAMPLE_CONFIG,
        tags=("merkl", "extractor", "model", "dataset", "lineage"),
    )

    def __init__(self, config: MerklConfig, ctx: PluginContext) -> None:
        super().__init__(config, ctx)
        try:
            self.repo = Repo.find(Path(config.path))
        except NotARepoError as exc:
            raise CatalogError(f"merkl source: path {config.path!r}: {exc}") from None

    def extract(self, emit: Emit) -> None:
        assets = _Extraction(self.repo, self.ctx, self.config.model_patterns).run()
        for urn in sorted(assets):
            emit(assets[urn])

    def close(self) -> None:
        self.repo.index.close()


class _Extraction:
    """One walk: pointers first, then outputs breadth-first through the run log."""

    def __init__(self, repo: Repo, ctx: PluginContext, model_patterns: list[str]) -> None:
        self.repo = repo
        self.ctx = ctx
        self.patterns = model_patterns
        self.files = FileIndex(repo)
        self.log = RunLog(repo)
        self.assets: dict[str, Asset] = {}
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()

    def run(self) -> dict[str, Asset]:
        for rel, pointer in self.files.pointers():
            self._add_tracked(rel, pointer)
        for problem in self.files.problems:
            self.ctx.warn(f"merkl source: {problem} (skipped)")
        while self._queue:
            self._add_output(self._queue.popleft())
        return self.assets

    # -- files ----------------------------------------------------------------------------
    def _file_type(self, rel: str) -> str:
        name = rel.rsplit("/", 1)[-1]
        for pattern in self.patterns:
            if fnmatch.fnmatchcase(rel if "/" in pattern else name, pattern):
                return MODEL
        return DATASET

    def _file_urn(self, rel: str) -> str:
        return make_urn(SERVICE, self.ctx.scope, "file", rel)

    def _add_tracked(self, rel: str, pointer: Pointer) -> None:
        attributes: dict[str, Any] = {
            "path": rel,
            "hash": HASH_PREFIX + pointer.oid,
            "size": pointer.size,
            "tracked": True,
            "kind": pointer.type,
        }
        if pointer.type == "dir":
            attributes["files"] = pointer.files
        upstreams = []
        if pointer.output is not None:
            attributes["output"] = HASH_PREFIX + pointer.output
            attributes["serializer"] = pointer.serializer or ""
            upstreams.append(self._output_resource(pointer.output))
        try:
            moment: str | None = normalize_timestamp(pointer.timestamp)
        except TimestampError:
            moment = None
        description = (
            f"{rel}, written by a merkl pipeline" if pointer.output else f"{rel}, tracked by merkl"
        )
        self._add_file(rel, pointer.oid, attributes, upstreams, description, moment)

    def _add_file(
        self,
        rel: str,
        oid: str,
        attributes: dict[str, Any],
        upstreams: list[dict[str, str]],
        description: str,
        moment: str | None,
    ) -> None:
        asset_type = self._file_type(rel)
        if asset_type == MODEL:
            version = make_model_version(
                status="",
                version=oid[:12],
                attributes={"hash": HASH_PREFIX + oid},
                labels=None,
                create_time=moment,
                update_time=moment,
            )
            data = make_model(
                namespace=self.repo.root.name,
                flavor=SERVICE,
                versions=[version],
                attributes=attributes,
                create_time=moment,
                update_time=moment,
            )
        else:
            data = _table(attributes, moment)
        self.assets[self._file_urn(rel)] = make_asset(
            urn=self._file_urn(rel),
            name=rel.rsplit("/", 1)[-1],
            service=SERVICE,
            asset_type=asset_type,
            description=description,
            data=data,
            upstreams=upstreams,
            create_time=moment,
            update_time=moment,
        )

    def _file_resources(self, oid: str) -> list[dict[str, str]]:
        """Upstreams for an input file's content hash: its tracked item(s), else the files
        the stat cache knows with that content (each gets an asset of its own)."""
        sources = self.files.find(oid)
        tracked = [s for s in sources if s.item is not None]
        chosen = tracked or sources
        for source in chosen:
            if source.item is None:
                self._add_untracked(source, oid)
        items = sorted({s.item or s.path for s in chosen})
        return [
            make_resource(self._file_urn(rel), service=SERVICE, resource_type=self._file_type(rel))
            for rel in items
        ]

    def _add_untracked(self, source: FileSource, oid: str) -> None:
        if self._file_urn(source.path) in self.assets:
            return
        attributes = {
            "path": source.path,
            "hash": HASH_PREFIX + oid,
            "tracked": False,
            "kind": "file",
        }
        self._add_file(
            source.path,
            oid,
            attributes,
            [],
            f"{source.path}, an input file of a merkl pipeline (not tracked)",
            None,
        )

    # -- outputs --------------------------------------------------------------------------
    def _output_resource(self, out_hash: str) -> dict[str, str]:
        if out_hash not in self._queued:
            self._queued.add(out_hash)
            self._queue.append(out_hash)
        return make_resource(
            make_urn(SERVICE, self.ctx.scope, "output", out_hash),
            service=SERVICE,
            resource_type=DATASET,
        )

    def _add_output(self, out_hash: str) -> None:
        run = self.log.find_run(out_hash)
        attributes: dict[str, Any] = {
            "hash": HASH_PREFIX + out_hash,
            "cached": self.log.is_cached(out_hash),
        }
        upstreams: list[dict[str, str]] = []
        moment = None
        if run is None:
            name = f"output {out_hash[:12]}"
            description = "a pipeline output computed elsewhere (not in this run log)"
        else:
            name = self.log.label(run)
            description = f"output {run.out_index} of task {run.module}.{run.task}"
            moment = format_timestamp(dt.datetime.fromtimestamp(run.time, dt.UTC))
            attributes.update(_run_attributes(run))
            upstreams = self._parents(run)
        urn = make_urn(SERVICE, self.ctx.scope, "output", out_hash)
        self.assets[urn] = make_asset(
            urn=urn,
            name=name,
            service=SERVICE,
            asset_type=DATASET,
            description=description,
            data=_table(attributes, moment),
            upstreams=upstreams,
            create_time=moment,
            update_time=moment,
        )

    def _parents(self, run: RunRecord) -> list[dict[str, str]]:
        resources: dict[str, dict[str, str]] = {}
        for parent in run.parents:
            if self.log.find_run(parent) is not None or self.repo.index.find_output(parent):
                found = [self._output_resource(parent)]
            else:
                found = self._file_resources(parent)
            if not found:
                self.ctx.warn(
                    f"merkl source: output {run.out_hash[:12]} ({run.module}.{run.task}): input "
                    f"{parent[:12]} is neither a logged output nor a known file; left out of "
                    f"its upstreams"
                )
            resources.update((r["urn"], r) for r in found)
        return [resources[urn] for urn in sorted(resources)]


def _run_attributes(run: RunRecord) -> dict[str, Any]:
    return {
        "task": f"{run.module}.{run.task}",
        "output_index": run.out_index,
        "code_hash": HASH_PREFIX + run.code_hash,
        "args_hash": HASH_PREFIX + run.args_hash,
        "arguments": {name: HASH_PREFIX + h for name, h in run.arg_hashes.items()},
        "size": run.size,
        "duration_seconds": round(run.duration, 6),
    }


def _table(attributes: dict[str, Any], moment: str | None) -> dict[str, Any]:
    """A `Table` payload holding only attributes (Meteor has no message for plain datasets)."""
    return make_data(
        "Table",
        {
            "profile": None,
            "columns": [],
            "preview_fields": [],
            "preview_rows": None,
            "attributes": make_struct(attributes),
            "create_time": moment,
            "update_time": moment,
        },
    )
