"""The public plugin interface of the catalog: `Source`, `Processor` and `Sink`.

A plugin is a class with a `name`, a pydantic `Config` (unknown keys are rejected), an `info`
(description and a sample config for `merkl catalog info` / `gen`) and the one method of its
kind. The runner validates the recipe's `config:` mapping into `Config`, then calls
`Plugin(config, ctx)`; `__init__` does the setup that can fail before any record moves (parse
credentials, open clients) and raises a `CatalogError` that says what to fix.

```python
class MySource(Source[MyConfig]):
    name = "mine"
    Config = MyConfig
    info = PluginInfo(description="…", sample_config="path: ./data")

    def extract(self, emit: Emit) -> None:
        emit(make_asset(urn=make_urn("mine", self.ctx.scope, "table", "t1"), …))
```

Register it under the entry point group `merkl.catalog.sources` (`…processors`, `…sinks`), or
add a line to `merkl.catalog.registry.BUILTIN_PLUGINS`.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict

from merkl.catalog.asset import Asset
from merkl.errors import CatalogError, ExtractError

__all__ = [
    "Asset",
    "CatalogError",
    "Emit",
    "ExtractError",
    "Plugin",
    "PluginConfig",
    "PluginContext",
    "PluginInfo",
    "Processor",
    "RetryableError",
    "Sink",
    "Source",
    "config_fields",
]

PluginKind = Literal["source", "processor", "sink"]
Emit = Callable[[Asset], None]
"""What a source calls once per record; safe to call from several threads at once."""


class PluginConfig(BaseModel):
    """Base of every plugin's config: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ConfigT = TypeVar("ConfigT", bound=PluginConfig)


class RetryableError(CatalogError):
    """A failure worth retrying (a timeout, a 5xx or 429 answer): the runner retries it with
    exponential backoff before giving up."""


@dataclass(frozen=True)
class PluginInfo:
    """What `merkl catalog list/info/gen` show about a plugin."""

    description: str
    sample_config: str = ""
    """YAML for the plugin's `config:` mapping, comments allowed; must validate as `Config`."""
    tags: tuple[str, ...] = ()


@dataclass
class PluginContext:
    """What the runner gives each plugin: where it runs and where to report skipped work."""

    recipe_name: str
    scope: str = ""
    """The recipe's `source.scope` (URN scope); always non-empty for sources."""
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("merkl.catalog"))
    warnings: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def warn(self, message: str) -> None:
        """Record work skipped without failing the run (a project or model that could not be
        read); it is logged and listed in the run's report."""
        self.logger.warning("[%s] %s", self.recipe_name, message)
        with self._lock:
            self.warnings.append(message)


class Plugin(ABC, Generic[ConfigT]):
    """Common part of the three kinds."""

    kind: ClassVar[PluginKind]
    name: ClassVar[str]
    Config: ClassVar[type[PluginConfig]]
    info: ClassVar[PluginInfo]

    def __init__(self, config: ConfigT, ctx: PluginContext) -> None:
        self.config = config
        self.ctx = ctx

    def close(self) -> None:
        """Release what `__init__` opened; called once when the run ends (a sink of a failed
        run gets `abort` instead)."""


class Source(Plugin[ConfigT]):
    """Extracts records; `extract` returns when all of them were emitted."""

    kind: ClassVar[PluginKind] = "source"

    @abstractmethod
    def extract(self, emit: Emit) -> None:
        """Call `emit(asset)` once per record.

        Work that can be skipped (one unreadable item) goes to `self.ctx.warn(...)`; a failure
        of the whole extraction raises `ExtractError`, or `RetryableError` when running again
        may succeed. `emit` may raise when the run is stopping; let that propagate.
        """


class Processor(Plugin[ConfigT]):
    """Transforms each record between the source and the sinks."""

    kind: ClassVar[PluginKind] = "processor"

    @abstractmethod
    def process(self, asset: Asset) -> Asset:
        """Return the changed record (it may be `asset` itself, changed in place).

        Raises `CatalogError` when the record cannot be processed; that fails the run.
        """


class Sink(Plugin[ConfigT]):
    """Delivers records somewhere. The runner calls `sink` from one thread at a time."""

    kind: ClassVar[PluginKind] = "sink"

    @abstractmethod
    def sink(self, assets: list[Asset]) -> None:
        """Deliver `assets`; raise `RetryableError` for a failure worth retrying, any other
        `CatalogError` for one that is not (the records are then dropped for this sink)."""

    def abort(self) -> None:
        """Called instead of `close` when the run failed: drop what is not yet final."""
        self.close()


def config_fields(config_cls: type[BaseModel]) -> list[dict[str, Any]]:
    """Rows for `merkl catalog info`: key, type, required, default, description.

    A field's `json_schema_extra` may give `type` and `default` as they should be shown (a
    duration as `10s`, not nanoseconds).
    """
    rows = []
    for key, spec in config_cls.model_fields.items():
        extra = spec.json_schema_extra if isinstance(spec.json_schema_extra, dict) else {}
        is_required = spec.is_required()
        default = None if is_required else spec.get_default(call_default_factory=True)
        rows.append(
            {
                "key": spec.alias or key,
                "type": extra.get("type", _type_name(spec.annotation)),
                "required": is_required,
                "default": extra.get("default", default),
                "description": spec.description or "",
            }
        )
    return rows


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(str(arg) for arg in get_args(annotation))
    if origin is dict or annotation is dict:
        return "map"
    if origin is list or annotation is list:
        return "list"
    return {str: "string", int: "int", bool: "bool", float: "number"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )
