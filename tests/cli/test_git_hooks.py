"""`merkl install` / `uninstall`: git hooks that keep tracked data in step with git."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_merkl_process

pytestmark = pytest.mark.skipif(
    subprocess.run(["git", "--version"], capture_output=True).returncode != 0,
    reason="needs git",
)
MARK = "# >>> merkl"
USER_HOOK = '#!/bin/sh\necho mine > "$(git rev-parse --show-toplevel)/mine.txt"\n'


@pytest.fixture
def env() -> dict[str, str]:
    """`merkl` on PATH (this venv's) and a git identity, as in a user's shell."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def git(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def merkl(cwd: Path, env: dict[str, str], *args: str) -> str:
    result = run_merkl_process(*args, cwd=cwd, env=env)
    assert result.code == 0, result.err
    return result.out


@pytest.fixture
def gitrepo(merkl_globals: Path, env: dict[str, str]) -> Path:
    git(merkl_globals, env, "init", "-q", "-b", "main")
    merkl(merkl_globals, env, "init")
    return merkl_globals


def hook(root: Path, name: str) -> Path:
    return root / ".git" / "hooks" / name


def test_post_checkout_brings_the_old_data(gitrepo, env):
    data = gitrepo / "data.bin"
    data.write_text("version 1\n")
    merkl(gitrepo, env, "track", "data.bin")
    git(gitrepo, env, "add", "-A")
    git(gitrepo, env, "commit", "-qm", "v1")
    data.unlink()  # a symlink into the store: replace it, as a user's script would
    data.write_text("version 2\n")
    merkl(gitrepo, env, "track", "data.bin")
    git(gitrepo, env, "commit", "-qam", "v2")

    out = merkl(gitrepo, env, "install")
    assert "post-checkout" in out
    assert os.access(hook(gitrepo, "post-checkout"), os.X_OK)
    git(gitrepo, env, "checkout", "-q", "HEAD~1")
    assert data.read_text() == "version 1\n"
    git(gitrepo, env, "checkout", "-q", "main")
    assert data.read_text() == "version 2\n"


def test_post_merge_checks_out_after_a_pull(gitrepo, env, tmp_path):
    data = gitrepo / "data.bin"
    data.write_text("v1\n")
    merkl(gitrepo, env, "track", "data.bin")
    git(gitrepo, env, "add", "-A")
    git(gitrepo, env, "commit", "-qm", "v1")
    merkl(gitrepo, env, "install")
    git(gitrepo, env, "checkout", "-qb", "feature")
    data.unlink()
    data.write_text("v2\n")
    merkl(gitrepo, env, "track", "data.bin")
    git(gitrepo, env, "commit", "-qam", "v2")
    git(gitrepo, env, "checkout", "-q", "main")
    assert data.read_text() == "v1\n"
    git(gitrepo, env, "merge", "-q", "--ff-only", "feature")
    assert data.read_text() == "v2\n"


def test_install_is_idempotent_and_keeps_existing_hooks(gitrepo, env):
    existing = hook(gitrepo, "post-checkout")
    existing.parent.mkdir(parents=True, exist_ok=True)
    existing.write_text(USER_HOOK)
    existing.chmod(0o755)
    merkl(gitrepo, env, "install")
    second = merkl(gitrepo, env, "install")
    assert "already" in second
    text = existing.read_text()
    assert text.count(MARK) == 1
    assert "echo mine" in text
    (gitrepo / "f.txt").write_text("x")
    git(gitrepo, env, "add", "-A")
    git(gitrepo, env, "commit", "-qm", "one")
    git(gitrepo, env, "checkout", "-qb", "other")
    assert (gitrepo / "mine.txt").read_text() == "mine\n"  # the user's hook still runs

    merkl(gitrepo, env, "uninstall")
    assert existing.read_text() == USER_HOOK
    assert not hook(gitrepo, "post-merge").exists()  # only merkl's: removed entirely


def test_pre_push_only_when_asked(gitrepo, env, tmp_path):
    merkl(gitrepo, env, "install")
    assert not hook(gitrepo, "pre-push").exists()
    merkl(gitrepo, env, "install", "--pre-push")
    assert "merkl push" in hook(gitrepo, "pre-push").read_text()
    # A push runs `merkl push` to the default remote first.
    store = tmp_path / "store"
    merkl(gitrepo, env, "remote", "add", "--default", "origin", str(store))
    data = gitrepo / "data.bin"
    data.write_text("pushed with git\n")
    merkl(gitrepo, env, "track", "data.bin")
    git(gitrepo, env, "add", "-A")
    git(gitrepo, env, "commit", "-qm", "data")
    bare = tmp_path / "bare.git"
    git(tmp_path, env, "init", "-q", "--bare", str(bare))
    git(gitrepo, env, "push", "-q", str(bare), "main")
    assert any(store.rglob("*")), "merkl push did not run before git push"


def test_a_hook_in_another_language_is_left_alone(gitrepo, env):
    existing = hook(gitrepo, "post-merge")
    existing.parent.mkdir(parents=True, exist_ok=True)
    existing.write_text("#!/usr/bin/env python3\nprint('hi')\n")
    result = run_merkl_process("install", cwd=gitrepo, env=env)
    assert result.code == 1
    assert "post-merge" in result.err
    assert existing.read_text() == "#!/usr/bin/env python3\nprint('hi')\n"


def test_install_outside_git_says_so(merkl_globals, env):
    merkl(merkl_globals, env, "init")
    result = run_merkl_process("install", cwd=merkl_globals, env=env)
    assert result.code == 1
    assert "git" in result.err
    assert result.err.count("\n") == 1
