"""Commands for remotes: `merkl remote add|list|remove`, `merkl push`, `merkl pull`."""

from __future__ import annotations

import sys
from typing import Annotated

from clize import Clize

from merkl.repo import Repo


def remote_add(
    name: str,
    url: str,
    *options: str,
    default: bool = False,
    local: bool = False,
    force: bool = False,
) -> str:
    """Add a remote (`--force` replaces one of the same name).

    URL is a directory (`/mnt/share/merkl`, `file:///…`), `s3://bucket/prefix`,
    `redis://host:6379/0`, a SQLAlchemy URL (`sqlite:///merkl.db`, `postgresql://host/db`,
    `mysql+pymysql://host/db`) or `tiered:NAME,NAME` (existing remotes, fastest first).
    Credentials never go in the URL: write `${VAR}` and export VAR, e.g.
    `redis://:${REDIS_PASSWORD}@cache:6379/0`. OPTIONS are KEY=VALUE pairs stored with the
    remote: endpoint_url, region (S3); prefix (Redis); table, schema (SQL); and for any kind
    jobs=N, read_through=true (fetch on a local cache miss during .get()),
    trust_pickle=true (allow pickled outputs from this remote to be loaded).

    :param name: the remote's name (letters, digits, - and _)
    :param url: where the remote is
    :param options: KEY=VALUE settings for this remote
    :param default: make it the default remote for push, pull and run --pull
    :param local: write it to .merkl/config.toml (this machine only) instead of merkl.toml
    :param force: replace a remote of the same name (without it that is an error)
    """
    from merkl.ops.remote import remote_add as add

    return add(Repo.find(), name, url, options, default=default, local=local, force=force)


def remote_list() -> str:
    """List the configured remotes (passwords masked)."""
    from merkl.ops.remote import remote_list as rows

    lines = [
        f"{name}\t{url}\t{'default' if is_default else ''}\t{file}".rstrip()
        for name, url, is_default, file in rows(Repo.find())
    ]
    return "\n".join(lines) if lines else "no remotes; add one with `merkl remote add NAME URL`"


def remote_remove(name: str) -> str:
    """Remove a remote from the configuration (its data stays where it is).

    :param name: the remote's name
    """
    from merkl.ops.remote import remote_remove as remove

    return remove(Repo.find(), name)


def push(
    *paths: str,
    remote: Annotated[str | None, Clize[str, "r"]] = None,
    jobs: Annotated[int | None, Clize[int, "j"]] = None,
    all_commits: bool = False,
) -> str:
    """Send tracked files and cached task outputs to a remote.

    Without PATHS, pushes every tracked file and every cached task output (except those with
    CachePolicy.LOCAL); with PATHS, only those tracked files. Objects the remote already has
    are skipped, so an interrupted push resumes where it stopped.

    :param paths: tracked files or folders (default: everything)
    :param remote: the remote's name (default: the default remote)
    :param jobs: parallel transfers (default: depends on the kind of remote)
    :param all_commits: also push the tracked files of every git commit that the local cache
        holds, and publish a root naming them, so `merkl gc --remote` keeps history
    """
    from merkl.ops.push import push as run_push

    report = run_push(Repo.find(), remote, list(paths) or None, jobs=jobs, all_commits=all_commits)
    if report.signing and report.outputs.transferred:
        print(f"merkl: note: {report.signing}", file=sys.stderr)
    report.raise_for_failures()
    return report.summary()


def pull(
    *paths: str,
    remote: Annotated[str | None, Clize[str, "r"]] = None,
    jobs: Annotated[int | None, Clize[int, "j"]] = None,
    no_outputs: bool = False,
    trust_pickle: bool = False,
    force: bool = False,
) -> str:
    """Fetch tracked files and cached task outputs from a remote, and check the files out.

    Every object is re-hashed on arrival; one that does not match is refused. Without PATHS,
    also fetches every cached task output the remote holds, so `merkl run` of a pipeline that
    was computed elsewhere runs no task.

    :param paths: tracked files or folders (default: everything)
    :param remote: the remote's name (default: the default remote)
    :param jobs: parallel transfers (default: depends on the kind of remote)
    :param no_outputs: fetch tracked files only, no cached task outputs
    :param trust_pickle: accept pickled outputs from this remote (loading pickle can run code)
    :param force: check out over local files that differ and are not saved in the cache
    """
    from merkl.ops.pull import pull as run_pull

    report = run_pull(
        Repo.find(),
        remote,
        list(paths) or None,
        jobs=jobs,
        outputs=not no_outputs,
        trust_pickle=trust_pickle,
        force=force,
    )
    report.raise_for_failures()
    return report.summary()
