"""The `file` sink: assets as ndjson (one protojson line each) or as a YAML list.

Records go to a temporary file beside the target; only a successful run moves them into place
(replacing the file, or appended to it with `overwrite: false`), so a failed run leaves the
target as it was.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import IO, Literal

from pydantic import Field, field_validator

from merkl.catalog.asset import Asset, dump_asset
from merkl.catalog.plugin import PluginConfig, PluginContext, PluginInfo, Sink
from merkl.errors import CatalogError


class FileConfig(PluginConfig):
    path: str = Field(
        description="file to write; its name must have exactly one '.' (Meteor's rule)"
    )
    format: Literal["ndjson", "yaml", "yml"] = Field(
        description="ndjson (one JSON asset per line) or yaml (a YAML list)"
    )
    overwrite: bool = Field(default=True, description="replace the file; false appends to it")

    @field_validator("path")
    @classmethod
    def _check_name(cls, path: str) -> str:
        if not path:
            raise ValueError("a file path is required")
        if Path(path).name.count(".") != 1:
            raise ValueError(
                "invalid filename: the file name must contain exactly one '.', "
                "e.g. './assets.ndjson'"
            )
        return path


class FileSink(Sink[FileConfig]):
    """Writes assets to `config.path`, atomically at the end of a successful run."""

    name = "file"
    Config = FileConfig
    info = PluginInfo(
        description="Save assets to a file (ndjson or yaml)",
        sample_config="path: ./assets.ndjson\nformat: ndjson\noverwrite: true\n",
        tags=("file", "json", "yaml", "sink"),
    )

    def __init__(self, config: FileConfig, ctx: PluginContext) -> None:
        super().__init__(config, ctx)
        self._target = Path(config.path)
        folder = self._target.parent
        if not folder.is_dir():
            raise CatalogError(
                f"file sink: directory {str(folder)!r} of {config.path!r} does not exist; "
                "create it first"
            )
        # A plain exclusive open (not mkstemp's 0600) so the result gets the usual umask mode.
        self._temp = folder / f".{self._target.name}.{secrets.token_hex(6)}.tmp"
        self._out: IO[bytes] = self._temp.open("xb")
        self._is_yaml = config.format != "ndjson"

    def sink(self, assets: list[Asset]) -> None:
        if self._is_yaml:
            import yaml  # type: ignore[import-untyped]

            text = yaml.safe_dump(assets, sort_keys=False, allow_unicode=True, width=1 << 16)
            self._out.write(text.encode())
        else:
            self._out.write(b"".join(dump_asset(asset) + b"\n" for asset in assets))

    def close(self) -> None:
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        if self.config.overwrite or not self._target.exists():
            os.replace(self._temp, self._target)
            return
        with self._target.open("ab") as target, self._temp.open("rb") as produced:
            while chunk := produced.read(1 << 20):
                target.write(chunk)
        self._temp.unlink()

    def abort(self) -> None:
        self._out.close()
        self._temp.unlink(missing_ok=True)
