"""What `merkl catalog list`, `info` and `gen` say about plugins."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from merkl.catalog.plugin import Plugin, PluginKind, config_fields
from merkl.catalog.recipe import RECIPE_VERSION
from merkl.catalog.registry import PLUGIN_KINDS, get_plugin, plugin_paths
from merkl.errors import CatalogError


@dataclass(frozen=True)
class PluginSummary:
    kind: str
    name: str
    description: str
    is_available: bool


def iter_plugin_summaries() -> Iterator[PluginSummary]:
    """Every registered plugin; one whose module cannot load says why instead of failing."""
    for kind in PLUGIN_KINDS:
        for name in sorted(plugin_paths(kind)):
            try:
                cls = get_plugin(kind, name)
            except CatalogError as exc:
                yield PluginSummary(kind, name, f"unavailable: {exc}", False)
                continue
            yield PluginSummary(kind, name, cls.info.description, True)


def describe_config(cls: type[Plugin[Any]]) -> list[dict[str, str]]:
    """Rows of the config table: key, type, required, default, description."""
    rows = []
    for row in config_fields(cls.Config):
        default = row["default"]
        rows.append(
            {
                "key": row["key"],
                "type": row["type"],
                "required": "yes" if row["required"] else "no",
                "default": "" if row["required"] else _show_default(default),
                "description": row["description"],
            }
        )
    return rows


def _show_default(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value in ({}, []):
        return "{}" if value == {} else "[]"
    return str(value)


def recipe_skeleton(
    source: str,
    sinks: Sequence[str],
    processors: Sequence[str] = (),
    *,
    name: str = "my-recipe",
    scope: str = "staging",
) -> str:
    """A recipe using the named plugins, each with its sample config.

    Raises:
        PluginNotFoundError: a name is not a registered plugin of its kind.
    """
    if not sinks:
        raise CatalogError("a recipe needs at least one sink; name one after the source")
    lines = [f"name: {name}", f"version: {RECIPE_VERSION}", "source:"]
    lines += _entry("source", source, indent="  ", scope=scope)
    if processors:
        lines.append("processors:")
        for processor in processors:
            lines += _entry("processor", processor, indent="  - ")
    lines.append("sinks:")
    for sink in sinks:
        lines += _entry("sink", sink, indent="  - ")
    return "\n".join(lines) + "\n"


def _entry(kind: PluginKind, name: str, *, indent: str, scope: str | None = None) -> list[str]:
    cls = get_plugin(kind, name)
    pad = " " * len(indent)
    lines = [f"{indent}name: {name}"]
    if scope is not None:
        lines.append(f"{pad}scope: {scope}")
    sample = cls.info.sample_config.strip("\n")
    if sample:
        lines.append(f"{pad}config:")
        lines += textwrap.indent(sample, pad + "  ").splitlines()
    return lines
