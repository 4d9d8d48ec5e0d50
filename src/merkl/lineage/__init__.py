"""OpenLineage events from every evaluation, when OpenLineage is configured.

Each top-level evaluation (`merkl run`, `merkl serve`, `.get()`, `merkl.evaluate`) becomes a
pipeline run (START, then COMPLETE or FAIL) and each task call it executes a child run with a
`parent` facet; outputs found in a cache are listed in the pipeline run's `merkl` facet. The
package hands its evaluation hook over to `watch_evaluation` at the first evaluation, which
looks the configuration up once per process; when nothing configures OpenLineage the hook
removes itself (evaluations then cost nothing more) and nothing of the client is ever imported.
See docs/lineage.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from merkl.observers import EVALUATION_HOOKS

# `import merkl` imports this module: everything else is imported at the first evaluation.
if TYPE_CHECKING:
    from merkl.lineage.config import LineageSettings
    from merkl.lineage.emitter import Emitter
    from merkl.observers import EvaluationWatcher
    from merkl.placeholder import Lazy
    from merkl.session import Session

_UNKNOWN = "?"
_source: str | None = _UNKNOWN  # what configures OpenLineage; None: nothing
_emitter: Emitter | None = None


def watch_evaluation(
    targets: list[Lazy], session: Session, pipeline: str | None
) -> EvaluationWatcher | None:
    """A watcher sending this evaluation's lineage, or None when OpenLineage is not set up."""
    global _source
    if _source == _UNKNOWN:
        _source = _configured_source()
    if _source is None:
        if watch_evaluation in EVALUATION_HOOKS:
            EVALUATION_HOOKS.remove(watch_evaluation)  # until `reset()`
        return None
    from merkl.errors import ConfigError
    from merkl.lineage.config import lineage_settings
    from merkl.lineage.sender import warn

    try:
        settings = lineage_settings(session.repo)
        return _watcher(settings, session, targets, pipeline)
    except ConfigError as exc:
        warn(f"{exc}; no lineage for this run")
    except Exception as exc:  # e.g. the sender cannot start: lineage never fails a run
        warn(f"no lineage for this run ({type(exc).__name__}: {exc})")
    return None


def _configured_source() -> str | None:
    import importlib.util

    from merkl.lineage.config import openlineage_source

    source = openlineage_source()
    if source is not None and importlib.util.find_spec("openlineage.client") is None:
        from merkl.lineage.sender import warn

        warn(
            f"configured by {source} but the client is not installed; "
            f"pip install 'merkl[openlineage]' (no lineage is sent)"
        )
        return None
    return source


def _watcher(
    settings: LineageSettings, session: Session, targets: list[Lazy], pipeline: str | None
) -> EvaluationWatcher:
    import time
    from pathlib import Path

    from merkl.lineage.run import PipelineRun
    from merkl.lineage.watcher import LineageWatcher

    emitter = _get_emitter()
    emitter.timeout = settings.timeout
    root = session.repo.root if session.repo is not None else Path.cwd()
    name = pipeline or _default_name(targets)
    return LineageWatcher(emitter, PipelineRun(settings, name, root, targets, time.time()))


def _default_name(targets: list[Lazy]) -> str:
    from merkl.files import FileOutput
    from merkl.placeholder import Placeholder

    for target in targets:
        node = target.source if isinstance(target, FileOutput) else target
        if isinstance(node, Placeholder):
            return f"evaluate:{node.task.module}.{node.task.name}"
    return "evaluate"


def _get_emitter() -> Emitter:
    global _emitter
    if _emitter is None:
        from merkl.lineage.emitter import Emitter

        _emitter = Emitter()
    return _emitter


def flush(timeout: float | None = None) -> bool:
    """Wait until the events queued so far are sent; False if `timeout` (default: the
    `[lineage] timeout`) passed first. Exiting the process does this on its own."""
    return _emitter.flush(timeout) if _emitter is not None else True


def close(timeout: float | None = None) -> bool:
    """Send what is queued, then stop the sender process (a later evaluation starts a new
    one); waits at most `timeout` (default: the `[lineage] timeout`), False if it had to stop a
    sender still busy. Exiting the process does this on its own."""
    return _emitter.close(timeout) if _emitter is not None else True


def reset() -> None:
    """Look the configuration up again at the next evaluation (after changing OPENLINEAGE_*
    variables or the working directory in a long-lived process)."""
    global _source
    _source = _UNKNOWN
    if watch_evaluation not in EVALUATION_HOOKS:
        EVALUATION_HOOKS.append(watch_evaluation)
    if _emitter is not None:
        _emitter.renew_sender()
