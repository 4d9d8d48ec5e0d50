"""Repo: a directory with a `.merkl/` folder; owns the store, the index and the settings.

A folder with a committed `merkl.toml` but no `.merkl/` (a fresh clone) is a repository too:
the first command there creates `.merkl/`, as a DVC clone just works.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merkl.cache.index import Index
from merkl.cache.store import INLINE_MAX, ObjectStore
from merkl.errors import ConfigError, NotARepoError

if TYPE_CHECKING:
    from merkl.cache import Cache

DOT_DIR = ".merkl"
PROJECT_CONFIG = "merkl.toml"
LOCAL_CONFIG = "config.toml"
# Sections every reader expects to be tables.
_TABLES = ("core", "remotes", "run", "lineage", "cache")

_PROJECT_TEMPLATE = """\
# merkl project settings (committed). Local overrides go in .merkl/config.toml.
# Credentials never go here: use environment variables or ${VAR} references.

[core]
# How tracked files are linked back from the store: symlink, hardlink, copy or reflink.
link = "symlink"
# Make new objects durable before an index row refers to them (across power loss). Within a
# run this is one sync per batch of outputs, not one fsync each. false skips it and is still
# safe: objects are verified when read, so a torn one is recomputed.
fsync = true
"""


class Repo:
    """A merkl repository rooted at `root` (the folder holding `.merkl/`)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.dot_dir = self.root / DOT_DIR

    def __repr__(self) -> str:
        return f"Repo({str(self.root)!r})"

    @classmethod
    def find(cls, start: Path | str | None = None) -> Repo:
        """The repo containing `start` (default: the working directory or `$MERKL_REPO`)."""
        if start is None:
            start = os.environ.get("MERKL_REPO") or Path.cwd()
        origin = Path(start).resolve()
        root = find_root(origin)
        if root is not None and not (root / DOT_DIR).is_dir():
            repo = cls.init(root)
            print(
                f"merkl: created {repo.dot_dir} (the local cache) for this clone: "
                f"{root / PROJECT_CONFIG} says it is a merkl project",
                file=sys.stderr,
            )
            return repo
        if root is not None:
            return cls(root)
        raise NotARepoError(
            f"not a merkl repository (no {DOT_DIR}/ or {PROJECT_CONFIG} in {origin} or any "
            f"parent); "
            f"run `merkl init` in your project's root first",
            path=origin,
        )

    @classmethod
    def init(cls, path: Path | str = ".") -> Repo:
        """Create `.merkl/` (idempotent), a `merkl.toml` if absent, and ignore `.merkl/` in git."""
        root = Path(path).resolve()
        repo = cls(root)
        for folder in (repo.dot_dir, repo.objects_dir, repo.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        project_config = root / PROJECT_CONFIG
        if not project_config.exists():
            project_config.write_text(_PROJECT_TEMPLATE)
        add_gitignore_entry(root, f"/{DOT_DIR}/")
        repo.index.find_output("0" * 64)  # creates the database and its schema now
        return repo

    @property
    def objects_dir(self) -> Path:
        return self.dot_dir / "objects"

    @property
    def tmp_dir(self) -> Path:
        return self.dot_dir / "tmp"

    @functools.cached_property
    def store(self) -> ObjectStore:
        setting = os.environ.get("MERKL_FSYNC")
        if setting is not None:
            fsync = setting.lower() not in ("0", "false", "no", "off")
        else:
            fsync = self.config.get("core", {}).get("fsync", True)
            if not isinstance(fsync, bool):
                file = self.setting_file("core", "fsync")
                raise ConfigError(
                    f"{file}: [core] fsync must be true or false, got {fsync!r}",
                    path=file,
                    key="core.fsync",
                )
        return ObjectStore(
            self.objects_dir,
            self.tmp_dir,
            fsync=fsync,
            inline=self.index,
            inline_max=self._inline_max(),
        )

    def _inline_max(self) -> int:
        """`[cache] inline_max`: outputs smaller than this live in the index (0: never)."""
        value = self.config.get("cache", {}).get("inline_max")
        if value is None:
            return INLINE_MAX
        from merkl.units import parse_size

        file = self.setting_file("cache", "inline_max")
        size = parse_size(str(value), f"[cache] inline_max in {file}")
        if size > 1 << 20:
            raise ConfigError(
                f"{file}: [cache] inline_max must be at most 1MiB (inline objects are read "
                f"whole into memory), got {value!r}",
                path=file,
                key="cache.inline_max",
            )
        return size

    @functools.cached_property
    def index(self) -> Index:
        return Index(self.dot_dir / "index.sqlite")

    @functools.cached_property
    def cache(self) -> Cache:
        from merkl.cache import CACHE_OPEN_HOOKS, Cache  # tracking commands never load it

        cache = Cache(self.store, self.index)
        for hook in CACHE_OPEN_HOOKS:
            hook(self, cache)
        return cache

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        """`merkl.toml` merged with `.merkl/config.toml` (local values win, table by table)."""
        merged: dict[str, Any] = {}
        for path in (self.root / PROJECT_CONFIG, self.dot_dir / LOCAL_CONFIG):
            for key, value in read_toml(path).items():
                if key in _TABLES and not isinstance(value, dict):
                    raise ConfigError(
                        f"{path}: {key!r} must be a table ([{key}] followed by key = value "
                        f"lines), got {value!r}",
                        path=path,
                        key=key,
                    )
                if isinstance(value, dict) and isinstance(merged.get(key), dict):
                    merged[key] = {**merged[key], **value}
                else:
                    merged[key] = value
        return merged

    def setting_file(self, table: str, key: str) -> Path:
        """The config file that sets `[table] key` (the local one wins), for error messages."""
        local = self.dot_dir / LOCAL_CONFIG
        section = read_toml(local).get(table)
        if isinstance(section, dict) and key in section:
            return local
        return self.root / PROJECT_CONFIG

    def relpath(self, path: Path | str) -> str:
        """`path` relative to the repo root, in POSIX form."""
        return Path(os.path.abspath(path)).relative_to(self.root).as_posix()


def find_root(start: Path) -> Path | None:
    """The nearest folder from `start` up holding `.merkl/` or a `merkl.toml`, if any."""
    for folder in (start, *start.parents):
        if (folder / DOT_DIR).is_dir() or (folder / PROJECT_CONFIG).is_file():
            return folder
    return None


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a missing file is empty, a broken one a ConfigError naming it."""
    import tomllib  # only when settings are read

    try:
        text = path.read_text(encoding="utf-8")  # TOML is UTF-8 whatever the locale says
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text ({exc.reason})"
        raise ConfigError(f"{path}: cannot read the settings: {reason}", path=path) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}", path=path) from exc


def add_gitignore_entry(root: Path, entry: str) -> bool:
    """Append `entry` to `<root>/.gitignore` unless it is already there; True if added."""
    gitignore = root / ".gitignore"
    try:
        lines = gitignore.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    if entry in lines:
        return False
    prefix = "" if not lines or gitignore.read_text().endswith("\n") else "\n"
    with open(gitignore, "a") as handle:
        handle.write(f"{prefix}{entry}\n")
    return True
