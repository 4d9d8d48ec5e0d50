"""Meteor recipes: find the files, render variables, parse the YAML keeping line numbers.

```yaml
name: merlin-staging          # optional, defaults to the file name without extension
version: v1beta1              # required, exactly this
source: {name: merlin, scope: staging, config: {url: …}}
processors: [{name: labels, config: {labels: {team: ml}}}]   # optional, in order
sinks: [{name: console}]      # at least one
```

Loading checks the recipe's own shape; each plugin's `config:` is checked against the plugin by
`merkl.catalog.validate`. Every error is a `RecipeError` naming the file and line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merkl.catalog.template import expand_env, render_template, template_variables
from merkl.errors import RecipeError

if TYPE_CHECKING:
    from merkl.catalog.plugin import PluginKind

RECIPE_VERSION = "v1beta1"
RECIPE_SUFFIXES = (".yaml", ".yml")
_TOP_LEVEL_KEYS = ("name", "version", "source", "processors", "sinks")

KeyPath = tuple[Any, ...]


@dataclass(frozen=True)
class PluginSpec:
    """One `source`, `processors[i]` or `sinks[i]` entry of a recipe."""

    kind: PluginKind
    name: str
    config: dict[str, Any]
    key_path: KeyPath
    """Where the entry sits in the recipe, e.g. `("sinks", 1)`."""
    scope: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}"


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe, with the line of every key for error messages."""

    name: str
    path: Path
    source: PluginSpec
    processors: list[PluginSpec]
    sinks: list[PluginSpec]
    lines: dict[KeyPath, int] = field(default_factory=dict, repr=False)

    def where(self, key_path: KeyPath = ()) -> str:
        """`file:line` of `key_path`, or of its closest parent that has a line."""
        return _where(str(self.path), self.lines, key_path)


def _where(source: str, lines: Mapping[KeyPath, int], key_path: KeyPath) -> str:
    for end in range(len(key_path), -1, -1):
        line = lines.get(key_path[:end])
        if line is not None:
            return f"{source}:{line}"
    return source


def iter_recipe_paths(target: str | Path) -> list[Path]:
    """The recipe files named by `target`: the file itself, or a directory's `*.yaml`/`*.yml`.

    Raises:
        RecipeError: `target` does not exist, or is a directory without recipe files.
    """
    path = Path(target)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in RECIPE_SUFFIXES and p.is_file())
        if not found:
            raise RecipeError(
                f"no recipe files ({', '.join('*' + s for s in RECIPE_SUFFIXES)}) in directory "
                f"{str(path)!r}; create one with `merkl catalog gen SOURCE SINK > recipe.yaml`"
            )
        return found
    if not path.exists():
        raise RecipeError(f"no recipe file or directory {str(path)!r}; check the path")
    return [path]


def load_recipe(
    path: Path,
    environ: Mapping[str, str] | None = None,
    var_file: Path | None = None,
    env_problems: list[str] | None = None,
) -> Recipe:
    """Read, render and parse the recipe at `path`.

    With an `env_problems` list, missing `${VAR}`s are added to it instead of raising, so a
    linter goes on to check the rest of the recipe.

    Raises:
        RecipeError: the file cannot be read, a variable is missing, the YAML is invalid or the
            recipe's shape is wrong (wrong version, unknown key, no sink, …).
    """
    environ = os.environ if environ is None else environ
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise RecipeError(f"cannot read recipe {source!r}: {reason}") from exc
    text = render_template(text, template_variables(environ, var_file), source)
    data, lines = _parse_yaml(text, source)
    if not isinstance(data, dict):
        raise RecipeError(
            f"{source}: a recipe is a YAML mapping with version, source and sinks; "
            f"got {type(data).__name__}"
        )
    data = expand_env(data, environ, lines.get, source, env_problems)
    return _build_recipe(data, path, lines)


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[KeyPath, int]]:
    import yaml  # type: ignore[import-untyped]

    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:  # a ReaderError: a control character in the text
        raise RecipeError(f"{source}: invalid YAML: {exc}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise RecipeError(f"{source}: the recipe is empty; start from `merkl catalog gen`")
        lines: dict[KeyPath, int] = {}
        _record_lines(node, (), lines, source)
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        # Only the problem and position: the offending line may hold a rendered secret.
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise RecipeError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: invalid YAML: {type(exc).__name__}") from None
    except RecursionError:  # PyYAML composes nested blocks recursively
        raise RecipeError(f"{source}: the recipe is nested too deeply to read") from None
    finally:
        loader.dispose()


def _record_lines(node: Any, key_path: KeyPath, lines: dict[KeyPath, int], source: str) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                raise RecipeError(f"{source}:{line}: key {key!r} appears twice in one mapping")
            seen.add(key)
            lines[(*key_path, key)] = line
            _check_size(lines, source)
            _record_lines(value_node, (*key_path, key), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*key_path, index)] = item.start_mark.line + 1
            _check_size(lines, source)
            _record_lines(item, (*key_path, index), lines, source)


_MAX_ENTRIES = 100_000


def _check_size(lines: dict[KeyPath, int], source: str) -> None:
    # YAML aliases can make a 1 kB file stand for 10^9 values ("billion laughs"): stop early.
    if len(lines) > _MAX_ENTRIES:
        raise RecipeError(
            f"{source}: the recipe expands to more than {_MAX_ENTRIES} keys and items (YAML "
            f"aliases repeating aliases?); a recipe is a small file, write it out plainly"
        )


def _build_recipe(data: dict[str, Any], path: Path, lines: dict[KeyPath, int]) -> Recipe:
    source = str(path)

    def fail(key_path: KeyPath, message: str) -> RecipeError:
        return RecipeError(f"{_where(source, lines, key_path)}: {message}")

    unknown = [key for key in data if key not in _TOP_LEVEL_KEYS]
    if unknown:
        raise fail(
            (unknown[0],),
            f"unknown recipe key {unknown[0]!r}; a recipe has {', '.join(_TOP_LEVEL_KEYS)}",
        )
    version = data.get("version")
    if version != RECIPE_VERSION:
        raise fail(
            ("version",),
            f"recipe version is invalid or not found: got {version!r}, expected "
            f"{RECIPE_VERSION!r}",
        )
    name = data.get("name") or path.stem
    if not isinstance(name, str):
        raise fail(("name",), f"recipe name must be a string; got {name!r}")
    if not isinstance(data.get("source"), dict):
        raise fail(("source",), "the recipe needs a `source:` mapping with name, scope and config")
    source_spec = _plugin_spec("source", data["source"], ("source",), fail)
    processors = [
        _plugin_spec("processor", entry, ("processors", i), fail)
        for i, entry in enumerate(_entries(data, "processors", fail))
    ]
    sinks = [
        _plugin_spec("sink", entry, ("sinks", i), fail)
        for i, entry in enumerate(_entries(data, "sinks", fail))
    ]
    if not sinks:
        raise fail(
            ("sinks",), "the recipe needs at least one sink, e.g. `sinks: [{name: console}]`"
        )
    return Recipe(name, path, source_spec, processors, sinks, lines)


def _entries(data: dict[str, Any], key: str, fail: Any) -> list[Any]:
    entries = data.get(key)
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise fail((key,), f"`{key}:` must be a list of {{name, config}} entries")
    return entries


def _plugin_spec(kind: PluginKind, entry: Any, key_path: KeyPath, fail: Any) -> PluginSpec:
    allowed = ("name", "type", "scope", "config") if kind == "source" else ("name", "config")
    if not isinstance(entry, dict):
        raise fail(key_path, f"each {kind} entry is a mapping with {', '.join(allowed)}")
    unknown = [key for key in entry if key not in allowed]
    if unknown:
        raise fail(
            (*key_path, unknown[0]),
            f"unknown {kind} key {unknown[0]!r}; expected {', '.join(allowed)}",
        )
    # Meteor still accepts the legacy `type:` for the source's name.
    name = entry.get("name") or entry.get("type")
    if not isinstance(name, str) or not name:
        raise fail((*key_path, "name"), f"the {kind} entry needs a `name:` (a plugin name)")
    config = entry.get("config")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise fail((*key_path, "config"), f"the {kind} {name!r} `config:` must be a mapping")
    scope = entry.get("scope", "")
    if not isinstance(scope, str):
        raise fail((*key_path, "scope"), f"the source scope must be a string; got {scope!r}")
    return PluginSpec(kind, name, config, key_path, scope if kind == "source" else "")
