"""Commands of the core engine: `init` and `run`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

from clize import Clize

from merkl.ops.run import RunOptions, parse_output_files, run_pipeline
from merkl.repo import Repo


def init(path: str = ".", *, sign: bool = False) -> str:
    """Create a merkl repository.

    Creates the hidden `.merkl/` folder (local cache and index), a committed `merkl.toml` with
    the project settings, and adds `.merkl/` to `.gitignore`. Running it again is harmless.

    :param path: the project's root folder
    :param sign: trust your own signing key in merkl.toml (creating the key if you have none),
        so pulls accept only output records signed by trusted keys; add colleagues' keys with
        `merkl trust add`
    """
    repo = Repo.init(Path(path))
    message = f"Initialized merkl repository in {repo.dot_dir}"
    if sign:
        from merkl.ops.trust import trust_myself

        message += f"\n{trust_myself(repo)}"
    return message


def run(
    target: str,
    *pipeline_args: str,
    dry: bool = False,
    fill_missing: bool = False,
    no_cache: bool = False,
    jobs: Annotated[int | None, Clize[int, "j"]] = None,
    executor: Annotated[str | None, Clize[str]] = None,
    scheduler: Annotated[str | None, Clize[str]] = None,
    pull: bool = False,
    remote: Annotated[str | None, Clize[str, "r"]] = None,
) -> None:
    """Run a pipeline or task function and print its result.

    TARGET is `module.function`, importable from the current directory. The arguments after it
    are the function's own, parsed from its signature (`merkl run mod.fn --help` lists them).
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
    :param pull: first fetch from the remote exactly what this run needs: tracked files named
        in the arguments, and cached outputs (top down: upstream ones only where needed)
    :param remote: the remote for --pull (default: the default remote)
    """
    args, output_files = parse_output_files(list(pipeline_args))
    options = RunOptions(
        dry=dry,
        fill_missing=fill_missing,
        no_cache=no_cache,
        jobs=jobs,
        executor=executor,
        scheduler=scheduler,
        pull=pull,
        remote=remote,
    )
    text = run_pipeline(target, args, options, output_files)
    sys.stdout.write(text)
