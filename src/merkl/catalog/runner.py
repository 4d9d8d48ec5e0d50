"""Run recipes: set up every plugin, extract, pass each record through processors to sinks.

As in Meteor: all plugins are set up before any record moves (a setup failure fails the recipe
with nothing extracted); the source calls `emit` from its own threads; each record goes through
the processors in order and then to every sink. A sink failure worth retrying (5xx, timeout) is
retried with exponential backoff; after that the record is dropped for that sink and reported
apart from extraction, and the run goes on unless `stop_on_sink_error`. A recipe succeeds only
if extraction succeeded and every sink took every record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merkl.catalog.asset import Asset
from merkl.catalog.plugin import Plugin, PluginContext, Processor, RetryableError, Sink, Source
from merkl.catalog.recipe import Recipe, load_recipe
from merkl.catalog.validate import ResolvedPlugin, resolve_recipe
from merkl.errors import CatalogError, RecipeError

_MAX_CONCURRENT_RECIPES = 4


@dataclass(frozen=True)
class RunOptions:
    """Agent settings (Meteor's `MAX_RETRIES`, `RETRY_INITIAL_INTERVAL_SECONDS`, …)."""

    max_retries: int = 3
    retry_initial_s: float = 1.0
    retry_multiplier: float = 2.0
    stop_on_sink_error: bool = False
    environ: Mapping[str, str] | None = None
    """Variables for `${VAR}` and `METEOR_*`; None means `os.environ`."""
    var_file: Path | None = None

    def backoff_s(self, attempt: int) -> float:
        return float(self.retry_initial_s * self.retry_multiplier**attempt)


@dataclass
class SinkReport:
    """How one sink of one recipe fared."""

    name: str
    delivered: int = 0
    dropped: int = 0
    retries: int = 0
    first_error: str = ""


@dataclass
class RecipeResult:
    """Meteor's run result (`recipe, error, duration_in_ms, record_count, success`) and more."""

    recipe: str
    path: str
    source: str = ""
    error: str = ""
    duration_ms: int = 0
    record_count: int = 0
    extract_retries: int = 0
    warnings: list[str] = field(default_factory=list)
    sinks: list[SinkReport] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.error


def run_recipe_files(paths: Sequence[Path], options: RunOptions) -> list[RecipeResult]:
    """Load and run every recipe, several at a time; results in the order of `paths`."""
    if len(paths) == 1:
        return [run_recipe_file(paths[0], options)]
    with ThreadPoolExecutor(min(len(paths), _MAX_CONCURRENT_RECIPES)) as pool:
        return list(pool.map(lambda path: run_recipe_file(path, options), paths))


def run_recipe_file(path: Path, options: RunOptions) -> RecipeResult:
    """Load the recipe at `path` and run it; a recipe that cannot be loaded is a failed result."""
    started = time.monotonic()
    try:
        recipe = load_recipe(path, options.environ, options.var_file)
    except (CatalogError, RecipeError) as exc:
        result = RecipeResult(path.stem, str(path), error=str(exc))
        result.duration_ms = _elapsed_ms(started)
        return result
    return run_recipe(recipe, options)


def run_recipe(recipe: Recipe, options: RunOptions) -> RecipeResult:
    """Run one loaded recipe to the end; never raises for a failure of the recipe itself."""
    started = time.monotonic()
    result = RecipeResult(recipe.name, str(recipe.path), source=recipe.source.name)
    try:
        resolved = resolve_recipe(recipe)
    except RecipeError as exc:
        result.error = str(exc)
        result.duration_ms = _elapsed_ms(started)
        return result
    ctx = PluginContext(recipe.name, scope=recipe.source.scope, warnings=result.warnings)
    opened: list[Plugin[Any]] = []
    try:
        source = _set_up(resolved.source, ctx, opened)
        processors = [_set_up(p, ctx, opened) for p in resolved.processors]
        sinks = [_set_up(s, ctx, opened) for s in resolved.sinks]
    except CatalogError as exc:
        result.error = str(exc)
        _finish(opened, success=False)
        result.duration_ms = _elapsed_ms(started)
        return result
    result.sinks = [SinkReport(sink.name) for sink in sinks]
    pipeline = _Pipeline(processors, sinks, result.sinks, options, ctx)  # type: ignore[arg-type]
    try:
        error = _extract(source, pipeline, options, ctx, result)  # type: ignore[arg-type]
    except BaseException:  # Ctrl-C: nothing half-written stays behind
        _finish(opened, success=False)
        raise
    result.record_count = pipeline.count
    error = pipeline.failure or error or _sink_failures(result)
    # A failed run aborts its sinks, so the file sink leaves no half-written file behind.
    close_problem = _finish(opened, success=not error)
    result.error = error or close_problem
    result.duration_ms = _elapsed_ms(started)
    return result


def _set_up(
    resolved: ResolvedPlugin, ctx: PluginContext, opened: list[Plugin[Any]]
) -> Plugin[Any]:
    spec = resolved.spec
    try:
        plugin = resolved.cls(resolved.config, ctx)
    except CatalogError as exc:
        raise CatalogError(f"failed to setup {spec.kind} {spec.name!r}: {exc}") from exc
    opened.append(plugin)
    return plugin


def _extract(
    source: Source[Any],
    pipeline: _Pipeline,
    options: RunOptions,
    ctx: PluginContext,
    result: RecipeResult,
) -> str:
    prefix = f"failed to run extractor: error running extractor {source.name!r}"
    for attempt in range(options.max_retries + 1):
        try:
            source.extract(pipeline.emit)
            return ""
        except RetryableError as exc:
            if pipeline.failure or attempt == options.max_retries:
                retries = f" (retryable; gave up after {attempt} retries)" if attempt else ""
                return f"{prefix}: {exc}{retries}"
            delay = options.backoff_s(attempt)
            ctx.logger.warning(
                "[%s] extraction failed, retrying in %gs: %s", ctx.recipe_name, delay, exc
            )
            result.extract_retries += 1
            time.sleep(delay)
        except Exception as exc:  # the runner reports every source failure, bug or not
            detail = str(exc) if isinstance(exc, CatalogError) else f"{type(exc).__name__}: {exc}"
            return f"{prefix}: {detail}"
    raise AssertionError("unreachable")  # pragma: no cover


class _Pipeline:
    """The `emit` given to the source: processors, counting, then every sink in turn."""

    def __init__(
        self,
        processors: list[Processor[Any]],
        sinks: list[Sink[Any]],
        reports: list[SinkReport],
        options: RunOptions,
        ctx: PluginContext,
    ) -> None:
        self._processors = processors
        self._sinks = list(zip(sinks, reports, strict=True))
        self._options = options
        self._ctx = ctx
        self._lock = threading.Lock()
        self.count = 0
        self.failure = ""
        """Why the run stopped early (a processor error, a sink error with stop_on_sink_error)."""

    def emit(self, asset: Asset) -> None:
        with self._lock:
            if self.failure:
                raise CatalogError(f"the run is stopping: {self.failure}")
            for processor in self._processors:
                try:
                    asset = processor.process(asset)
                except Exception as exc:  # a processor failure stops the run, bug or not
                    self.failure = f"emitter: error running processor {processor.name!r}: {exc}"
                    raise CatalogError(self.failure) from exc
            self.count += 1
            for sink, report in self._sinks:
                self._deliver(sink, report, asset)

    def _deliver(self, sink: Sink[Any], report: SinkReport, asset: Asset) -> None:
        attempt = 0
        while True:
            try:
                sink.sink([asset])
                report.delivered += 1
                return
            except RetryableError as exc:
                if attempt < self._options.max_retries:
                    delay = self._options.backoff_s(attempt)
                    self._ctx.logger.warning(
                        "[%s] sink %r failed, retrying in %gs: %s",
                        self._ctx.recipe_name,
                        sink.name,
                        delay,
                        exc,
                    )
                    report.retries += 1
                    attempt += 1
                    time.sleep(delay)
                    continue
                self._drop(sink, report, asset, f"{exc} (after {attempt} retries)")
            except Exception as exc:  # per-record sink failures go to the report
                detail = (
                    str(exc) if isinstance(exc, CatalogError) else f"{type(exc).__name__}: {exc}"
                )
                self._drop(sink, report, asset, detail)
            return

    def _drop(self, sink: Sink[Any], report: SinkReport, asset: Asset, detail: str) -> None:
        report.dropped += 1
        report.first_error = report.first_error or detail
        self._ctx.logger.warning(
            "[%s] error running sink %r, record %s dropped: %s",
            self._ctx.recipe_name,
            sink.name,
            asset.get("urn"),
            detail,
        )
        if self._options.stop_on_sink_error:
            self.failure = f"sink {sink.name!r}: {detail}"
            raise CatalogError(self.failure)


def _sink_failures(result: RecipeResult) -> str:
    failed = [r for r in result.sinks if r.dropped]
    return "; ".join(
        f"sink {r.name!r} dropped {r.dropped} of {r.dropped + r.delivered} records: "
        f"{r.first_error}"
        for r in failed
    )


def _finish(opened: list[Plugin[Any]], *, success: bool) -> str:
    """Close (on success) or abort every plugin; the first close failure, if any."""
    problem = ""
    while opened:
        plugin = opened.pop()
        try:
            if not success and isinstance(plugin, Sink):
                plugin.abort()
            else:
                plugin.close()
        except Exception as exc:  # closing one plugin must not leave the others open
            problem = problem or f"failed to close {plugin.kind} {plugin.name!r}: {exc}"
            success = False
    return problem


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
