"""Check a recipe against its plugins: every name known, every `config:` valid.

Used by `merkl catalog lint` (all problems listed) and before a run (nothing starts unless the
whole recipe is valid). Messages name the file, the line, the plugin and the config key; values
of secret fields (`SecretStr`) are never repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError

from merkl.catalog.registry import get_plugin
from merkl.errors import CatalogError, RecipeError

if TYPE_CHECKING:
    from merkl.catalog.plugin import Plugin, PluginConfig
    from merkl.catalog.recipe import PluginSpec, Recipe


@dataclass(frozen=True)
class ResolvedPlugin:
    """A recipe entry with its plugin class and validated config."""

    spec: PluginSpec
    cls: type[Plugin]  # type: ignore[type-arg]
    config: PluginConfig


@dataclass(frozen=True)
class ResolvedRecipe:
    recipe: Recipe
    source: ResolvedPlugin
    processors: list[ResolvedPlugin]
    sinks: list[ResolvedPlugin]


def resolve_recipe(recipe: Recipe) -> ResolvedRecipe:
    """Every plugin of `recipe`, looked up and configured.

    Raises:
        RecipeError: listing every problem (one per `; `-separated part).
    """
    problems: list[str] = []
    resolved = [_resolve(recipe, spec, problems) for spec in _all_specs(recipe)]
    if problems:
        raise RecipeError("; ".join(problems))
    source, *rest = resolved
    processors = rest[: len(recipe.processors)]
    sinks = rest[len(recipe.processors) :]
    return ResolvedRecipe(recipe, source, processors, sinks)  # type: ignore[arg-type]


def lint_recipe(recipe: Recipe) -> list[str]:
    """Every problem in `recipe`'s plugins, one message each (empty when it is valid)."""
    problems: list[str] = []
    for spec in _all_specs(recipe):
        _resolve(recipe, spec, problems)
    return problems


def _all_specs(recipe: Recipe) -> list[PluginSpec]:
    return [recipe.source, *recipe.processors, *recipe.sinks]


def _resolve(recipe: Recipe, spec: PluginSpec, problems: list[str]) -> ResolvedPlugin | None:
    where = recipe.where((*spec.key_path, "name"))
    try:
        cls = get_plugin(spec.kind, spec.name)
    except CatalogError as exc:
        problems.append(f"{where}: {exc}")
        return None
    if spec.kind == "source" and not spec.scope:
        problems.append(
            f"{recipe.where(spec.key_path)}: {spec.label}: urn scope is required to generate "
            "unique urn; add `scope:` (e.g. the environment, `staging`) to the source"
        )
    try:
        config = cls.Config.model_validate(spec.config)
    except ValidationError as exc:
        problems.extend(_config_problems(recipe, spec, cls.Config, exc))
        return None
    return ResolvedPlugin(spec, cls, config)


def _config_problems(
    recipe: Recipe, spec: PluginSpec, config_cls: type[PluginConfig], exc: ValidationError
) -> list[str]:
    problems = []
    known = ", ".join(config_cls.model_fields) or "none"
    for error in exc.errors(include_url=False, include_input=True):
        loc = tuple(error["loc"])
        key = ".".join(str(part) for part in loc)
        where = recipe.where((*spec.key_path, "config", *loc))
        kind = error["type"]
        if kind == "extra_forbidden":
            detail = f"unknown key; {spec.name} takes {known}"
        elif kind == "missing":
            detail = "required key is missing"
        else:
            detail = _plain_message(error["msg"])
            if not _is_secret(config_cls, loc):
                detail += f" (got {_show(error.get('input'))})"
        problems.append(f"{where}: {spec.label}: config.{key}: {detail}")
    return problems


def _plain_message(message: str) -> str:
    # pydantic prefixes messages of custom validators with "Value error, ".
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _is_secret(config_cls: type[PluginConfig], loc: tuple[Any, ...]) -> bool:
    field = config_cls.model_fields.get(str(loc[0])) if loc else None
    if field is None:
        return False
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return field.annotation is SecretStr or bool(extra.get("secret"))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
