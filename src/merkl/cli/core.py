"""Commands of the core engine: `init`, `run` and `version`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

from clize import Clize, parameters

from merkl.cli.trailing import own_options, take_own_options
from merkl.errors import UsageError
from merkl.ops.run import RunOptions, parse_output_files, run_pipeline
from merkl.repo import DOT_DIR, Repo, find_root


def init(path: str = ".", *, subdir: bool = False, sign: bool = False) -> str:
    """Create a merkl repository.

    Creates the hidden `.merkl/` folder (local cache and index), a committed `merkl.toml` with
    the project settings, and adds `.merkl/` to `.gitignore`. Running it again says so and
    changes nothing. A clone of a project whose `merkl.toml` is committed needs no `init`:
    its first merkl command creates `.merkl/`.

    :param path: the project's root folder
    :param subdir: make a separate repository inside a folder of another one (merkl commands
        in it then use its own cache and settings)
    :param sign: trust your own signing key in merkl.toml (creating the key if you have none),
        so pulls accept only output records signed by trusted keys; add colleagues' keys with
        `merkl trust add`
    """
    root = Path(path).resolve()
    if (root / DOT_DIR).is_dir():
        repo = Repo(root)
        message = f"merkl repository already initialized in {root / DOT_DIR}"
    else:
        outer = find_root(root.parent)
        if outer is not None and not subdir:
            raise UsageError(
                f"{root} is inside the merkl repository {outer}, whose commands work from any "
                f"folder in it; pass --subdir to make a separate repository here"
            )
        repo = Repo.init(root)
        message = f"Initialized merkl repository in {repo.dot_dir}"
    if sign:
        from merkl.ops.trust import trust_myself

        message += f"\n{trust_myself(repo)}"
    return message


def version() -> str:
    """Print merkl's version."""
    import merkl

    return f"merkl {merkl.__version__}"


def run(
    prog: Annotated[str, Clize[parameters.pass_name]],
    target: str,
    *pipeline_args: str,
    dry: bool = False,
    fill_missing: bool = False,
    no_cache: bool = False,
    jobs: Annotated[int | None, Clize[int, "j"]] = None,
    executor: Annotated[str | None, Clize[str]] = None,
    scheduler: Annotated[str | None, Clize[str]] = None,
    worker_remote: Annotated[str | None, Clize[str]] = None,
    pull: bool = False,
    remote: Annotated[str | None, Clize[str, "r"]] = None,
) -> None:
    """Run a pipeline or task function and print its result.

    TARGET is `module.function`, importable from the current directory. The arguments after it
    are the function's own, parsed from its signature (`merkl run mod.fn --help` lists them);
    parameters without an annotation take Python literals (`3`, `2.5`, `[1, 2]`, `None`),
    anything else stays text. Options of merkl's may follow TARGET unless the function has a
    keyword-only parameter of that name; after `--` everything is the function's.
    Tasks whose outputs are cached are not executed. The result's repr is the last line of
    stdout; progress and a summary go to stderr.

    Write output N of the result to a file with `-N FILE` after the arguments, e.g.
    `merkl run pipeline2.pipeline data.csv -0 score.json -1 model.bin`.

    :param target: the pipeline, as module.function
    :param pipeline_args: the pipeline function's arguments
    :param dry: compute hashes only: print each output's hash, task and whether it is cached
    :param fill_missing: stand in for missing pipeline arguments with placeholders, so a dry
        run still hashes everything that does not depend on them
    :param no_cache: neither read nor write any cache: run every task
    :param jobs: run up to N independent tasks at once (worker processes unless --executor
        says otherwise; default: one per CPU for threads, processes and dask)
    :param executor: where task bodies run: local (in this process, one at a time; the
        default), threads, processes, or dask (a Dask cluster)
    :param scheduler: address of a Dask scheduler (tcp://host:8786) to run on; without it
        --executor dask starts a local cluster of --jobs worker processes
    :param worker_remote: a configured remote the Dask workers store outputs on themselves
        (with their own credentials); only hashes come back to this process
    :param pull: first fetch from the remote exactly what this run needs: tracked files named
        in the arguments, and cached outputs (top down: upstream ones only where needed)
    :param remote: the remote for --pull (default: the default remote)
    """
    rest, own = take_own_options(target, pipeline_args, own_options(run))
    args, output_files = parse_output_files(rest)
    options = RunOptions(
        dry=bool(own.get("dry", dry)),
        fill_missing=bool(own.get("fill_missing", fill_missing)),
        no_cache=bool(own.get("no_cache", no_cache)),
        jobs=_whole_number("--jobs", own["jobs"]) if "jobs" in own else jobs,
        executor=str(own.get("executor", executor)) if "executor" in own else executor,
        scheduler=str(own["scheduler"]) if "scheduler" in own else scheduler,
        worker_remote=str(own["worker_remote"]) if "worker_remote" in own else worker_remote,
        pull=bool(own.get("pull", pull)),
        remote=str(own["remote"]) if "remote" in own else remote,
        command=prog,
    )
    text = run_pipeline(target, args, options, output_files)
    sys.stdout.write(text)


def _whole_number(option: str, value: str | bool) -> int:
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{option} takes a whole number, got {value!r}", exit_code=2) from None
