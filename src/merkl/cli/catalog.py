"""`merkl catalog run | lint | list | info | gen`: Meteor-compatible metadata recipes.

Heavy imports (pydantic, httpx, yaml, google-auth) happen inside the commands, so `merkl`'s other
commands never pay for them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from merkl.errors import CatalogError, RecipeError, UsageError

if TYPE_CHECKING:
    from rich.table import Table

    from merkl.catalog.runner import RecipeResult


def run(
    target: str,
    *more_targets: str,
    var: str = "",
    max_retries: int = 3,
    retry_initial: float = 1.0,
    stop_on_sink_error: bool = False,
) -> None:
    """Run Meteor recipes: extract assets from the source, process them, send them to the sinks.

    TARGET is a recipe file or a directory of *.yaml/*.yml recipes (run concurrently).
    Records go where the sinks say (the console sink prints them on stdout); warnings and the
    summary table go to stderr. Exits 1 unless every recipe succeeded.

    :param target: a recipe file, or a directory of recipes
    :param more_targets: more recipe files or directories
    :param var: a YAML file of variables for {{ .name }} in recipes (nested keys join with _)
    :param max_retries: retries of a failing sink or extraction (5xx, timeout) before giving up
    :param retry_initial: seconds before the first retry; each next wait doubles
    :param stop_on_sink_error: fail the recipe at the first record a sink cannot take, instead
        of dropping that record for that sink and going on
    """
    from merkl.catalog.runner import RunOptions, run_recipe_files

    if max_retries < 0 or retry_initial < 0:
        raise UsageError("--max-retries and --retry-initial must be >= 0", exit_code=2)
    paths = _recipe_paths((target, *more_targets))
    options = RunOptions(
        max_retries=max_retries,
        retry_initial_s=retry_initial,
        stop_on_sink_error=stop_on_sink_error,
        var_file=Path(var) if var else None,
    )
    with _warnings_to_stderr():
        results = run_recipe_files(paths, options)
    _print_summary(results)
    failed = [r for r in results if not r.success]
    if failed:
        first = failed[0]
        raise CatalogError(
            f"{len(failed)} of {len(results)} recipes failed; {first.recipe}: {first.error}"
        )


def lint(target: str, *more_targets: str, var: str = "") -> None:
    """Check recipes without running them: YAML, version, plugin names, every config key.

    Prints one line per problem (file:line: plugin: key: what is wrong), then a line per recipe.
    Exits 1 if any recipe has a problem.

    :param target: a recipe file, or a directory of recipes
    :param more_targets: more recipe files or directories
    :param var: a YAML file of variables for {{ .name }} in recipes
    """
    from merkl.catalog.recipe import load_recipe
    from merkl.catalog.validate import lint_recipe

    paths = _recipe_paths((target, *more_targets))
    verdicts = []
    for path in paths:
        env_problems: list[str] = []  # missing ${VAR}s, reported with everything else
        try:
            recipe = load_recipe(
                path, var_file=Path(var) if var else None, env_problems=env_problems
            )
            problems, name = [*env_problems, *lint_recipe(recipe)], recipe.name
        except RecipeError as exc:
            problems, name = [*env_problems, str(exc)], path.stem
        for problem in problems:
            print(problem)
        count = len(problems)
        verdicts.append(
            f"{'failed' if count else 'ok':6}  {name} ({path}): "
            f"{count} error{'' if count == 1 else 's'}"
        )
    failing = sum(1 for v in verdicts if v.startswith("failed"))
    print("\n".join(verdicts))
    print(f"{failing} failing, {len(paths) - failing} successful, and {len(paths)} total")
    if failing:
        raise CatalogError(f"{failing} of {len(paths)} recipes have problems (listed above)")


def list_() -> None:
    """List the catalog plugins: sources, processors and sinks."""
    from rich.table import Table

    from merkl.catalog.describe import iter_plugin_summaries

    table = Table("Kind", "Name", "Description", box=None, pad_edge=False)
    for summary in iter_plugin_summaries():
        table.add_row(summary.kind, summary.name, summary.description)
    _print_table(table, sys.stdout)


def info(name: str) -> None:
    """Show a plugin's description, config keys and a sample config.

    :param name: a plugin name, e.g. merlin, labels or file
    """
    from merkl.catalog.describe import describe_config
    from merkl.catalog.registry import find_plugins

    for cls in find_plugins(name):
        print(f"{cls.name} ({cls.kind}): {cls.info.description}")
        if cls.info.tags:
            print(f"tags: {', '.join(cls.info.tags)}")
        rows = describe_config(cls)
        print("\nconfig:" if rows else "\nconfig: none")
        for row in rows:
            default = f", default {row['default']}" if row["default"] else ""
            need = "required" if row["required"] == "yes" else "optional"
            print(f"  {row['key']} ({row['type']}, {need}{default})")
            if row["description"]:
                print(f"      {row['description']}")
        if cls.info.sample_config:
            print("\nsample config:")
            print(cls.info.sample_config.rstrip("\n"))
        print()


def gen(
    source: str,
    *sinks: str,
    processors: str = "",
    name: str = "my-recipe",
    scope: str = "staging",
    output: str = "",
) -> None:
    """Print a recipe skeleton using the named plugins, each with its sample config.

    Example: merkl catalog gen merlin console file --processors labels > recipe.yaml

    :param source: the source plugin, e.g. merlin
    :param sinks: one or more sink plugins, e.g. console file
    :param processors: processors to add, comma-separated, in order
    :param name: the recipe name
    :param scope: the source's URN scope, e.g. the environment
    :param output: write to this file instead of stdout (refuses to overwrite)
    """
    from merkl.catalog.describe import recipe_skeleton

    chosen = [p.strip() for p in processors.split(",") if p.strip()]
    text = recipe_skeleton(source, sinks, chosen, name=name, scope=scope)
    if not output:
        sys.stdout.write(text)
        return
    try:
        with open(output, "x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        raise CatalogError(f"{output!r} exists; choose another --output or remove it") from None
    print(f"wrote {output}", file=sys.stderr)


COMMANDS = {"run": run, "lint": lint, "list": list_, "info": info, "gen": gen}


def _recipe_paths(targets: tuple[str, ...]) -> list[Path]:
    from merkl.catalog.recipe import iter_recipe_paths

    return [path for target in targets for path in iter_recipe_paths(target)]


class _StderrHandler(logging.Handler):
    # Looks sys.stderr up at each record: the CLI may have redirected it.
    def emit(self, record: logging.LogRecord) -> None:
        print(f"merkl: warning: {self.format(record)}", file=sys.stderr)


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    logger = logging.getLogger("merkl.catalog")
    handler = _StderrHandler(logging.WARNING)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _print_summary(results: list[RecipeResult]) -> None:
    from rich.table import Table

    table = Table(
        "Status", "Recipe", "Source", "Duration(ms)", "Records", box=None, pad_edge=False
    )
    for result in results:
        status = "success" if result.success else "failed"
        table.add_row(
            status, result.recipe, result.source, str(result.duration_ms), str(result.record_count)
        )
    _print_table(table, sys.stderr)
    for result in results:
        if result.warnings:
            count = len(result.warnings)
            _note(f"{result.recipe}: {count} warning{'' if count == 1 else 's'} (above)")
        for sink in result.sinks:
            if sink.retries:
                _note(f"{result.recipe}: sink {sink.name!r} retried {sink.retries} times")
        if not result.success:
            _note(f"{result.recipe}: {result.error}")
    failing = sum(1 for r in results if not r.success)
    _note(f"{failing} failing, {len(results) - failing} successful, and {len(results)} total")


def _note(line: str) -> None:
    # Plain print, not rich: long error lines must stay whole for grep and logs.
    print(line, file=sys.stderr)


def _print_table(table: Table, stream: TextIO) -> None:
    """A rich table as plain lines (no trailing padding), so output greps and diffs cleanly."""
    from rich.console import Console

    console = Console(width=160, highlight=False, no_color=True)
    with console.capture() as captured:
        console.print(table)
    for line in captured.get().splitlines():
        print(line.rstrip(), file=stream)
