"""`merkl install` / `merkl uninstall`: git hooks that keep tracked data in step with git.

`post-checkout` (after a branch or commit checkout) and `post-merge` (after `git pull`) run
`merkl checkout`, so the work tree holds the data the checked-out pointers name;
`pre-push` (only with `--pre-push`) runs `merkl push` and stops the git push if it fails.

merkl's lines sit between two marker comments right after the shebang, so they run even when
the rest of an existing hook ends with `exit`; the user's lines are kept as they are, and
`uninstall` removes only what is between the markers. Hooks in another language than the
shell are left alone (with an error saying so).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from merkl.errors import UsageError
from merkl.fs import write_atomic
from merkl.repo import Repo

BEGIN = "# >>> merkl: added by `merkl install`, removed by `merkl uninstall` >>>"
END = "# <<< merkl <<<"
_SHELL = re.compile(r"^#!\s*\S*(/|\s)(env\s+)?(ba|da|k|z)?sh\b")
_CHECKOUT = """\
if command -v merkl >/dev/null 2>&1; then
  merkl checkout || echo "merkl hook: \\`merkl checkout\\` failed; tracked files may not match" >&2
else
  echo "merkl hook: merkl is not on PATH; run \\`merkl checkout\\` yourself" >&2
fi"""
_BODIES = {
    # $3 is 1 for a branch or commit checkout, 0 for `git checkout -- FILE`.
    "post-checkout": f'if [ "$3" = 1 ]; then\n{_CHECKOUT}\nfi',
    "post-merge": _CHECKOUT,
    "pre-push": """\
if command -v merkl >/dev/null 2>&1; then
  merkl push || {
    echo "merkl hook: \\`merkl push\\` failed, so git push stopped (--no-verify skips it)" >&2
    exit 1
  }
fi""",
}
CHECKOUT_HOOKS = ("post-checkout", "post-merge")


@dataclass(frozen=True)
class HookChange:
    name: str
    path: Path
    action: str  # installed, already installed, removed, not installed


def install(repo: Repo, *, pre_push: bool = False) -> list[HookChange]:
    """Add merkl's lines to the hooks (creating them if needed); idempotent.

    Raises:
        UsageError: not in a git repository, or a hook that is not a shell script.
    """
    folder = hooks_dir(repo)
    names = [*CHECKOUT_HOOKS, *(["pre-push"] if pre_push else [])]
    paths = {name: folder / name for name in names}
    for path in paths.values():  # check every hook before changing any
        text = _read(path)
        if text and BEGIN not in text and not _SHELL.match(text):
            raise UsageError(
                f"{path} is not a shell script; add `merkl checkout` to it yourself "
                f"(or `merkl push` for pre-push), or move it aside and run `merkl install` again"
            )
    changes = []
    for name, path in paths.items():
        text = _read(path)
        if BEGIN in text:
            changes.append(HookChange(name, path, "already installed"))
            continue
        block = f"{BEGIN}\n{_BODIES[name]}\n{END}\n"
        if text:
            shebang, _, rest = text.partition("\n")
            text = f"{shebang}\n{block}{rest}"
        else:
            text = f"#!/bin/sh\n{block}"
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text.encode(), fsync=False)
        path.chmod(path.stat().st_mode | 0o755)
        changes.append(HookChange(name, path, "installed"))
    return changes


def uninstall(repo: Repo) -> list[HookChange]:
    """Remove merkl's lines from every hook; a hook left with only its shebang is deleted."""
    folder = hooks_dir(repo)
    changes = []
    for name in _BODIES:
        path = folder / name
        text = _read(path)
        if BEGIN not in text:
            continue
        start = text.index(BEGIN)
        end = text.find(END, start)
        end = len(text) if end < 0 else end + len(END) + 1
        rest = text[:start] + text[end:]
        if rest.strip() in ("", "#!/bin/sh"):
            path.unlink()
        else:
            mode = path.stat().st_mode
            write_atomic(path, rest.encode(), fsync=False)
            path.chmod(mode)
        changes.append(HookChange(name, path, "removed"))
    return changes


def hooks_dir(repo: Repo) -> Path:
    """The git hooks folder of the repository holding `repo` (honours core.hooksPath)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--git-path", "hooks"],
            cwd=repo.root,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise UsageError("git is not installed; `merkl install` adds git hooks") from None
    if done.returncode != 0:
        raise UsageError(
            f"{repo.root} is not in a git repository; `merkl install` adds git hooks, so run "
            f"`git init` first"
        )
    return Path(os.path.join(repo.root, done.stdout.strip()))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
