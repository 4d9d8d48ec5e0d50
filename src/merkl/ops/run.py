"""`merkl run`: import a pipeline, call it with command-line arguments, evaluate its result."""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from merkl.cache.lock import shared_lock
from merkl.collector import gc_paused
from merkl.errors import UsageError
from merkl.evaluation import EvalStats, evaluate_value
from merkl.executors.options import executor_for_run
from merkl.files import FileOutput, FileRef
from merkl.fs import write_atomic
from merkl.graph import find_cached_many, iter_nodes
from merkl.ops.evict import evict_if_configured
from merkl.placeholder import Lazy, MissingArgument, Placeholder
from merkl.pointer import pointer_path
from merkl.repo import Repo
from merkl.session import Session, use_session
from merkl.targets import call_with_cli_args, import_target, pipeline_help, wants_help
from merkl.tasks import iter_lazy

_OUTPUT_OPTION = re.compile(r"^-(\d+)$")


@dataclass(frozen=True)
class RunOptions:
    dry: bool = False
    fill_missing: bool = False
    no_cache: bool = False
    executor: str | None = None
    jobs: int | None = None
    scheduler: str | None = None
    worker_remote: str | None = None  # Dask workers store outputs there themselves
    pull: bool = False  # fetch what the DAG needs from a remote first
    remote: str | None = None
    command: str = "merkl run"  # as typed, for usage lines (`merkl dry-run`)


def parse_output_files(args: list[str]) -> tuple[list[str], dict[int, Path]]:
    """Split `-N FILE` pairs (write output N to FILE) from the pipeline's own arguments."""
    rest: list[str] = []
    files: dict[int, Path] = {}
    i = 0
    while i < len(args):
        match = _OUTPUT_OPTION.match(args[i])
        if match is None:
            rest.append(args[i])
            i += 1
            continue
        if i + 1 >= len(args):
            raise UsageError(f"option {args[i]} needs a file name", exit_code=2)
        files[int(match.group(1))] = Path(args[i + 1])
        i += 2
    return rest, files


_MANY_OBJECTS = 200_000  # allocated while building: then one full collection, at the end


def run_pipeline(
    target: str, args: list[str], options: RunOptions, output_files: dict[int, Path]
) -> str:
    """Run `target`; return what goes to stdout (the result's repr, or the dry-run table)."""
    repo = Repo.find()
    executor = executor_for_run(
        options.executor,
        options.jobs,
        options.scheduler,
        repo.config,
        repo.setting_file,
        options.worker_remote,
    )
    if wants_help(args):
        return pipeline_help(target, options.command)
    function = import_target(target)
    if options.pull:
        from merkl.ops.pull import pull_tracked_arguments

        pull_tracked_arguments(repo, options.remote, args)
    session = Session(repo, use_cache=not options.no_cache, pending_writes=[])
    with use_session(session):
        # 1e6 tasks: 5.5 s of CPU to build and hash with the collector paused, not 7.0.
        with gc_paused(collect_over=_MANY_OBJECTS):
            result = call_with_cli_args(
                function, target, args, options.fill_missing, options.command
            )
        writes = list(session.pending_writes or [])
        outputs = _result_items(result)
        for index in output_files:
            if index >= len(outputs):
                raise UsageError(
                    f"-{index}: {target} returns {len(outputs)} output(s), numbered 0 to "
                    f"{len(outputs) - 1}",
                    exit_code=2,
                )
        writes += [
            FileOutput(outputs[i], file, track=False)
            for i, file in output_files.items()
            if isinstance(outputs[i], Placeholder)
        ]
        if options.pull:
            from merkl.ops.pull import pull_for_run

            pull_for_run(repo, options.remote, [*iter_lazy(result), *writes], session)
        if options.dry:
            return dry_run_table(result, writes, session)
        stats = EvalStats()
        start = time.perf_counter()
        # Shared: runs never wait for each other, but gc waits until these objects are indexed.
        with shared_lock(repo, f"merkl run {target}"):
            values = evaluate_value(
                (result, writes), executor=executor, stats=stats, pipeline=target
            )
        repo.cache.flush_use()
        evict_if_configured(repo)
        value = values[0]
        for index, file in output_files.items():
            if not isinstance(outputs[index], Placeholder):
                write_atomic(file, _dump_plain(_result_items(value)[index]))
        print(
            f"merkl: {stats.ran} task(s) run, {stats.loaded} output(s) from cache, "
            f"{time.perf_counter() - start:.2f}s",
            file=sys.stderr,
        )
    return f"{value!r}\n"


def _result_items(result: Any) -> list[Any]:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _dump_plain(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def dry_run_table(result: Any, writes: list[FileOutput], session: Session) -> str:
    """One line per node: hash, what it is, and whether it is cached (nothing runs)."""
    roots: list[Lazy] = [*iter_lazy(result), *(w.source for w in writes)]
    cache = session.repo.cache if session.use_cache and session.repo else None
    nodes = list(iter_nodes(roots))
    cached = find_cached_many(nodes, cache) if cache is not None else {}  # batched lookups
    lines = []
    for node in nodes:
        digest = node.hash or "?" * 64
        if isinstance(node, Placeholder):
            suffix = f"[{node.index}]" if node.call.n_outs > 1 else ""
            name = f"{node.task.module}.{node.task.name}{suffix}"
            if node.hash is None:
                state = "unknown"
            elif node in cached:
                state = "cached"
            else:
                state = "missing"
        elif isinstance(node, FileRef):
            # The words of `merkl dag`: a file with a committed pointer is "tracked".
            tracked = pointer_path(node.path).is_file()
            name, state = f"file {node.path}", "tracked" if tracked else "file"
        elif isinstance(node, MissingArgument):
            name, state = f"argument {node.name}", "missing-argument"
        else:
            name, state = repr(node), "input"
        lines.append(f"{digest}  {name}  {state}")
    lines += [f"{w.hash or '?' * 64}  write {w.path}  planned" for w in writes]
    return "".join(f"{line}\n" for line in lines)
