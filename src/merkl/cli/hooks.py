"""`merkl install` and `merkl uninstall`: git hooks (DVC's verbs)."""

from __future__ import annotations

from pathlib import Path

from merkl.repo import Repo


def install(*, pre_push: bool = False) -> str:
    """Install git hooks: after `git checkout` and `git pull`, run `merkl checkout`.

    So `git checkout <old commit>` brings the data of that commit (from the local store; run
    `merkl pull` for what is not there). Existing hooks are kept: merkl's lines go right after
    their first line, between marker comments. Running it again changes nothing.

    :param pre_push: also run `merkl push` before every `git push` (a failed push stops it)
    """
    from merkl.ops.hooks import install as install_hooks

    repo = Repo.find()
    changes = install_hooks(repo, pre_push=pre_push)
    return "\n".join(f"{c.name}: {c.action} ({_shown(repo, c.path)})" for c in changes)


def uninstall() -> str:
    """Remove merkl's lines from the git hooks (the rest of each hook is kept)."""
    from merkl.ops.hooks import uninstall as uninstall_hooks

    repo = Repo.find()
    changes = uninstall_hooks(repo)
    if not changes:
        return "no merkl hooks installed"
    return "\n".join(f"{c.name}: {c.action} ({_shown(repo, c.path)})" for c in changes)


def _shown(repo: Repo, path: Path) -> str:
    # A linked worktree's hooks live in the main checkout's .git, outside this root.
    try:
        return repo.relpath(path)
    except ValueError:
        return str(path)
