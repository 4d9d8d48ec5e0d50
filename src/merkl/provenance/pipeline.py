"""Call a pipeline with command-line arguments to get its DAG, without running any task.

The same steps as `merkl run --dry`: import `module.function`, parse its arguments from its
signature with clize, call it inside a session that queues `write_file` calls instead of
writing. What comes back are placeholders whose hashes are known before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from merkl.files import FileOutput
from merkl.placeholder import Lazy
from merkl.repo import Repo
from merkl.session import Session, use_session
from merkl.targets import call_with_cli_args, import_target, pipeline_help, wants_help
from merkl.tasks import iter_lazy

__all__ = ["Pipeline", "call_pipeline", "pipeline_help", "wants_help"]


@dataclass
class Pipeline:
    """A pipeline called but not run: its return value, the lazy values in it, its writes."""

    target: str
    result: Any
    roots: list[Lazy]
    writes: list[FileOutput]
    repo: Repo


def call_pipeline(
    target: str, args: list[str], *, fill_missing: bool = False, command: str = "merkl run"
) -> Pipeline:
    """Import `target` (module.function), call it with `args` and return its DAG.

    Raises:
        NotARepoError: not inside a merkl repository.
        UsageError: a bad target or bad pipeline arguments.
    """
    repo = Repo.find()
    function = import_target(target)
    session = Session(repo, pending_writes=[])
    with use_session(session):
        result = call_with_cli_args(function, target, args, fill_missing, command)
    roots = list(dict.fromkeys(iter_lazy(result)))
    return Pipeline(target, result, roots, list(session.pending_writes or []), repo)
