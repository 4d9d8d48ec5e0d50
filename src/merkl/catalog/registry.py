"""Plugin name → class, imported on first use.

Built-in names map to dotted paths here; other packages add plugins through the entry point
groups in `ENTRY_POINT_GROUPS` (an entry point `mine = "my_pkg.catalog:MySource"` in group
`merkl.catalog.sources`). A recipe may also name a class directly as `my_pkg.catalog:MySource`.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from merkl.errors import CatalogError, PluginNotFoundError

if TYPE_CHECKING:
    from merkl.catalog.plugin import Plugin, PluginKind

BUILTIN_PLUGINS: dict[str, dict[str, str]] = {
    "source": {
        "merlin": "merkl.catalog.sources.merlin:MerlinSource",
        "merkl": "merkl.catalog.sources.merkl:MerklSource",
    },
    "processor": {
        "enrich": "merkl.catalog.processors.enrich:EnrichProcessor",
        "labels": "merkl.catalog.processors.labels:LabelsProcessor",
    },
    "sink": {
        "compass": "merkl.catalog.sinks.compass:CompassSink",
        "console": "merkl.catalog.sinks.console:ConsoleSink",
        "file": "merkl.catalog.sinks.file:FileSink",
        "http": "merkl.catalog.sinks.http:HttpSink",
    },
}
ENTRY_POINT_GROUPS = {
    "source": "merkl.catalog.sources",
    "processor": "merkl.catalog.processors",
    "sink": "merkl.catalog.sinks",
}
PLUGIN_KINDS: tuple[PluginKind, ...] = ("source", "processor", "sink")


@cache
def _entry_point_paths(kind: str) -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUPS[kind])}


def plugin_paths(kind: PluginKind) -> dict[str, str]:
    """Every registered name of `kind` and its `module:Class` path (built-ins win)."""
    return {**_entry_point_paths(kind), **BUILTIN_PLUGINS[kind]}


def get_plugin(kind: PluginKind, name: str) -> type[Plugin]:  # type: ignore[type-arg]
    """The plugin class registered as `name`, or named by an import path `pkg.mod:Class`.

    Raises:
        PluginNotFoundError: no such name; the message lists the known ones.
        CatalogError: the plugin's module cannot be imported (an optional dependency is missing).
    """
    is_path = "." in name or ":" in name
    path = name if is_path else plugin_paths(kind).get(name)
    if path is None:
        known = ", ".join(sorted(plugin_paths(kind))) or "none"
        raise PluginNotFoundError(
            f"no catalog {kind} named {name!r}; known {kind}s: {known} "
            f"(other packages add {kind}s under the entry point group "
            f"{ENTRY_POINT_GROUPS[kind]!r})",
            kind=kind,
            name=name,
        )
    cls = _import(path, kind, name)
    from merkl.catalog.plugin import Plugin

    if not (isinstance(cls, type) and issubclass(cls, Plugin) and cls.kind == kind):
        raise CatalogError(
            f"{path!r} (catalog {kind} {name!r}) is not a merkl catalog {kind} class"
        )
    return cls


def _import(path: str, kind: str, name: str) -> object:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CatalogError(
            f"catalog {kind} {name!r} cannot be loaded from {path!r}: {exc}; "
            "install merkl's catalog extra: pip install 'merkl[catalog]'"
        ) from exc
    try:
        return getattr(module, attr) if attr else module
    except AttributeError:
        raise PluginNotFoundError(
            f"catalog {kind} {name!r}: module {module_name!r} has no {attr!r}",
            kind=kind,
            name=name,
        ) from None


def find_plugins(name: str) -> list[type[Plugin]]:  # type: ignore[type-arg]
    """Every plugin called `name`, of any kind (for `merkl catalog info`).

    Raises:
        PluginNotFoundError: no kind has that name.
    """
    found = [get_plugin(kind, name) for kind in PLUGIN_KINDS if name in plugin_paths(kind)]
    if not found:
        everything = sorted({n for kind in PLUGIN_KINDS for n in plugin_paths(kind)})
        raise PluginNotFoundError(
            f"no catalog plugin named {name!r}; known: {', '.join(everything)}", name=name
        )
    return found
