"""Reading the run log: runs by hash or hash prefix, argument sources, file paths by content.

The index's `runs` table records, for each computed output, the task, its code hash, one hash
per argument (`arg_hashes`) and the Merkle hashes of the lazy values it was computed from
(`parents`: upstream outputs, and the content hashes of input files). Two things are not
recorded and are recovered here:

- which argument a parent came from: an argument that *is* a lazy value hashes to
  `H(encode(ref to the parent's hash))`, so matching `arg_hashes` against that gives the name;
- which file a content hash was: tracked files' pointers map paths to oids, and the stat
  cache remembers the content hash of every input file merkl has hashed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from merkl.cache.index import RunRecord
from merkl.errors import CacheError, PointerFileError, TrackingError, UsageError
from merkl.hashing import HASH_PREFIX, HEX_LEN, encode_value, hash_bytes
from merkl.pointer import POINTER_SUFFIX, Pointer, iter_pointer_files, read_pointer
from merkl.repo import DOT_DIR, Repo

_HEX = frozenset("0123456789abcdef")
_MIN_PREFIX = 4
_CANDIDATES_SHOWN = 5


class _MerkleRef:
    """Encodes exactly as a lazy value whose hash is `digest` does."""

    __slots__ = ("digest",)

    def __init__(self, digest: str) -> None:
        self.digest = digest

    def __merkl_hash__(self) -> str:
        return self.digest


@cache
def lazy_argument_hash(digest: str) -> str:
    """The `arg_hashes` entry of an argument that is the lazy value with hash `digest`."""
    return hash_bytes(encode_value(_MerkleRef(digest)))


def argument_sources(run: RunRecord) -> dict[str, str]:
    """Argument name → parent hash, for the arguments that were lazy values themselves.

    A parent nested inside an argument (a list of placeholders) matches no name; it still
    appears in `run.parents`.
    """
    by_hash = {lazy_argument_hash(parent): parent for parent in run.parents}
    return {name: by_hash[h] for name, h in run.arg_hashes.items() if h in by_hash}


class RunLog:
    """The run log of one repository, with the lookups provenance needs."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self._all: list[RunRecord] | None = None
        self._by_task: dict[tuple[str, str], list[RunRecord]] | None = None

    def all_runs(self) -> list[RunRecord]:
        """Every logged run, newest first (read once)."""
        if self._all is None:
            self._all = list(self.repo.index.iter_runs())
        return self._all

    def find_run(self, out_hash: str) -> RunRecord | None:
        """The newest run that computed `out_hash`, if any was logged."""
        return next(self.repo.index.iter_runs(out_hash=out_hash, limit=1), None)

    def task_runs(self, module: str, task: str) -> list[RunRecord]:
        """Runs of `module.task`, newest first."""
        if self._by_task is None:
            self._by_task = {}
            for run in self.all_runs():
                self._by_task.setdefault((run.module, run.task), []).append(run)
        return self._by_task.get((module, task), [])

    def label(self, run: RunRecord) -> str:
        """`module.task`, with `[i]` when the call logged several outputs."""
        name = f"{run.module}.{run.task}"
        siblings = any(
            other.args_hash == run.args_hash and other.out_index != run.out_index
            for other in self.task_runs(run.module, run.task)
        )
        return f"{name}[{run.out_index}]" if siblings or run.out_index else name

    def is_cached(self, out_hash: str) -> bool:
        entry = self.repo.index.find_output(out_hash)
        return entry is not None and self.repo.store.has(entry.oid)

    def resolve(self, text: str) -> str:
        """The full output hash that `text` (a hash, `blake3:…`, or a unique prefix) names.

        Raises:
            UsageError: not hex, too short, or matching no output or several.
        """
        prefix = text.strip().lower().removeprefix(HASH_PREFIX)
        if not prefix or not set(prefix) <= _HEX or len(prefix) > HEX_LEN:
            raise UsageError(
                f"{text!r} is not an output hash: expected hex digits (a full hash or a "
                f"prefix of at least {_MIN_PREFIX}), as `merkl log` prints them",
                exit_code=2,
            )
        if len(prefix) < _MIN_PREFIX:
            raise UsageError(
                f"hash prefix {text!r} is too short: give at least {_MIN_PREFIX} hex digits",
                exit_code=2,
            )
        known = {run.out_hash for run in self.all_runs()}
        known.update(entry.out_hash for entry in self.repo.index.iter_outputs())
        matches = sorted(h for h in known if h.startswith(prefix))
        if not matches:
            raise UsageError(
                f"no recorded output hash starts with {prefix!r}; `merkl log` lists the "
                f"outputs computed in this repository"
            )
        if len(matches) > 1:
            shown = ", ".join(m[:16] for m in matches[:_CANDIDATES_SHOWN])
            raise UsageError(
                f"hash prefix {prefix!r} is ambiguous: {len(matches)} outputs match ({shown}"
                f"{', …' if len(matches) > _CANDIDATES_SHOWN else ''}); give more digits"
            )
        return matches[0]


@dataclass(frozen=True)
class FileSource:
    """A file known to have had some content hash.

    `item` is the tracked path that stands for it in the catalog: the file itself, or the
    tracked directory that contains it; None for a file that is not tracked.
    """

    path: str
    item: str | None


class FileIndex:
    """Content hash → the repository files known to hold it (tracked ones first).

    Built on first use from the work tree's pointer files (directory manifests included when
    they are in the local store) and the stat cache of hashed input files; for a hash found
    in neither, from the pointer files in git history.
    """

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.problems: list[str] = []  # pointer files that could not be read
        self._by_oid: dict[str, list[FileSource]] | None = None
        self._by_old_oid: dict[str, list[FileSource]] | None = None
        self._written: dict[str, list[str]] = {}
        self._pointers: list[tuple[str, Pointer]] = []

    def find(self, oid: str) -> list[FileSource]:
        """The files known to have content `oid`: in the work tree (tracked ones first), else
        tracked files whose pointer recorded it in some git commit."""
        return self._index().get(oid) or self._history().get(oid, [])

    def _history(self) -> dict[str, list[FileSource]]:
        if self._by_old_oid is None:
            from merkl.tracking.history import iter_history_pointers

            self._by_old_oid = {}
            try:
                pointers, _unreadable = iter_history_pointers(self.repo.root)
            except TrackingError:
                return self._by_old_oid  # not a git repository, or no git
            for pointer in pointers:
                sources = self._by_old_oid.setdefault(pointer.oid, [])
                if all(s.path != pointer.path for s in sources):
                    sources.append(FileSource(pointer.path, pointer.path))
        return self._by_old_oid

    def written(self, out_hash: str) -> list[str]:
        """Tracked files that `write_file(..., track=True)` wrote from output `out_hash`."""
        self._index()
        return self._written.get(out_hash, [])

    def pointers(self) -> list[tuple[str, Pointer]]:
        """(data path, pointer) of every readable pointer file in the work tree."""
        self._index()
        return self._pointers

    def _index(self) -> dict[str, list[FileSource]]:
        if self._by_oid is not None:
            return self._by_oid
        by_oid: dict[str, dict[str, FileSource]] = {}
        for oid, source in self._tracked_sources():
            by_oid.setdefault(oid, {}).setdefault(source.path, source)
        for oid, rel in self._hashed_inputs():
            by_oid.setdefault(oid, {}).setdefault(rel, FileSource(rel, None))
        self._by_oid = {oid: list(sources.values()) for oid, sources in by_oid.items()}
        return self._by_oid

    def _tracked_sources(self) -> Iterator[tuple[str, FileSource]]:
        from merkl.tracking.manifest import find_manifest

        for pointer_file in iter_pointer_files(self.repo.root):
            try:
                pointer = read_pointer(pointer_file)
            except PointerFileError as exc:
                self.problems.append(str(exc))
                continue
            rel = self._relative(pointer_file.with_name(pointer_file.name[: -len(POINTER_SUFFIX)]))
            if rel is None:
                continue
            self._pointers.append((rel, pointer))
            if pointer.output is not None:
                self._written.setdefault(pointer.output, []).append(rel)
            yield pointer.oid, FileSource(rel, rel)
            if pointer.type != "dir":
                continue
            try:
                manifest = find_manifest(self.repo, pointer.oid)
            except (TrackingError, CacheError) as exc:
                self.problems.append(str(exc))
                continue
            for entry in manifest.entries if manifest is not None else ():
                yield entry.oid, FileSource(f"{rel}/{entry.path}", rel)

    def _hashed_inputs(self) -> Iterator[tuple[str, str]]:
        for path, _inode, _size, _mtime, oid in self.repo.index.iter_file_states():
            rel = self._relative(Path(path))
            if rel is not None and rel.split("/", 1)[0] != DOT_DIR:
                yield oid, rel

    def _relative(self, path: Path) -> str | None:
        absolute = Path(os.path.abspath(path))
        for candidate in (absolute, absolute.parent.resolve() / absolute.name):
            try:
                return candidate.relative_to(self.repo.root).as_posix()
            except ValueError:
                continue
        return None
