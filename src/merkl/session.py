"""Session: the repo and options that `.get()` evaluates with.

`merkl run`, `merkl serve` and tests open a session explicitly with `use_session`; plain script
use gets a default session on the repo found from the working directory (or `$MERKL_REPO`).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merkl.repo import Repo

if TYPE_CHECKING:
    from merkl.files import FileOutput


@dataclass
class Session:
    """What an evaluation needs to know besides the DAG."""

    repo: Repo | None
    use_cache: bool = True
    # Lets pickled outputs fetched from remotes be loaded (they can run code).
    trust_pickle: bool = False
    # Inside a pipeline run, `write_file` queues its writes here instead of writing at once.
    pending_writes: list[FileOutput] | None = None
    # Files named by `merkl.path`, `read_file` and `write_file` must resolve inside this folder
    # (`merkl serve`: a client's argument must not read /etc/passwd). None: anywhere.
    confine_paths: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def require_repo(self) -> Repo:
        if self.repo is None:
            return Repo.find()  # raises NotARepoError with the `merkl init` hint
        return self.repo


_current: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "merkl_session", default=None
)
_defaults: dict[tuple[str, object], Session] = {}
_defaults_lock = threading.Lock()
# `os.environ.get` costs ~1 µs (its key is encoded in Python) on every `.get()`; the dict
# behind it, which every write through `os.environ` updates, is read in 20 ns.
_environ: Mapping[Any, Any] = os.environ
_REPO_VARIABLE: object = "MERKL_REPO"
if isinstance(getattr(os.environ, "_data", None), dict):
    _environ = os.environ._data  # type: ignore[attr-defined]
    _REPO_VARIABLE = os.environ.encodekey("MERKL_REPO")


def current_session() -> Session:
    """The innermost session opened with `use_session`, else the default one for this repo."""
    session = _current.get()
    if session is not None:
        return session
    # Keyed by where Repo.find() would start, so a cache hit does not walk the file system.
    key = (os.getcwd(), _environ.get(_REPO_VARIABLE))
    session = _defaults.get(key)
    if session is None:
        repo = Repo.find()
        with _defaults_lock:
            session = _defaults.setdefault(key, Session(repo))
    return session


@contextlib.contextmanager
def use_session(session: Session | None = None, **changes: Any) -> Iterator[Session]:
    """Evaluate with `session` (or the current one with `changes` applied) inside the block."""
    base = session if session is not None else _current.get()
    if base is None:
        base = current_session() if "repo" not in changes else Session(None)
    active = replace(base, **changes) if changes else base
    token = _current.set(active)
    try:
        yield active
    finally:
        _current.reset(token)


def reset_sessions() -> None:
    """Forget default sessions (tests, or after changing directory in a long-lived process)."""
    with _defaults_lock:
        for session in _defaults.values():
            if session.repo is not None:
                session.repo.index.close()
        _defaults.clear()
