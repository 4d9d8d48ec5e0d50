"""`merkl verify`: re-hash the local store and check the index against it.

Errors (exit 1) are states that could serve a wrong value or break a command: an object whose
bytes do not hash to its name, an output row whose object is gone or has another size, a
stat-cache row that vouches for content the file no longer has, an unreadable pointer file, a
damaged index. Notices are harmless leftovers: objects nothing references (`merkl gc` removes
them; verify never deletes data that might still be wanted), stat-cache rows for files that
changed or vanished, temporary files of killed writers, foreign files in the store.

`repair=True` removes what is bad so the next run recomputes (or the next pull re-fetches) it:
index rows pointing at missing or corrupt objects, wrong or stale stat-cache rows, old
temporary files; a damaged index is moved aside and recreated empty. Corrupt objects are
moved to `.merkl/quarantine/`, never deleted: one may be an edit made through a link into the
store, the only copy of someone's work. Repair holds the repository lock exclusively, as gc.

A `track` or `checkout` killed before it finished left an intent record
(`merkl.tracking.journal`): it is reported with the command that completes it, and the objects
it names, like those a work-tree file links to, are not called orphaned.

Safe to run while pipelines run: objects are listed before the index is read (a row is always
committed after its object is renamed into place), and row checks look at the store afresh.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from merkl.cache.index import Index
from merkl.cache.lock import exclusive_lock
from merkl.cache.stat_cache import SMUDGED
from merkl.errors import MerklError
from merkl.hashing import hash_bytes, hash_file
from merkl.pointer import Pointer, iter_pointer_files, read_pointer
from merkl.repo import Repo
from merkl.tracking import iter_pointer_oids
from merkl.tracking.journal import read_intents
from merkl.tracking.worktree import work_tree_links

TMP_GRACE_SECONDS = 3600  # a temporary file younger than this may belong to a live writer
_SMALL = 1 << 20  # objects below this are hashed from one read, in a thread pool
_BATCH = 256
_OBJECT_DIR = re.compile(r"[0-9a-f]{2}")
_OBJECT_NAME = re.compile(r"[0-9a-f]{62}")  # an oid without its folder's two characters
ERROR_KINDS = frozenset(
    {
        "corrupt-object",
        "corrupt-output",
        "missing-object",
        "size-mismatch",
        "wrong-file-state",
        "invalid-pointer",
        "index-corrupt",
    }
)


@dataclass
class Finding:
    """One thing verify found: `kind`, the object/output/path it concerns, and why."""

    kind: str
    subject: str
    detail: str
    repaired: bool = False

    @property
    def is_error(self) -> bool:
        return self.kind in ERROR_KINDS


@dataclass
class VerifyReport:
    """What was checked and found; `ok` when no finding is an error."""

    objects: int = 0
    bytes: int = 0
    outputs: int = 0
    file_states: int = 0
    pointers: int = 0
    repair: bool = False
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.is_error for f in self.findings)

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "repair": self.repair,
            "checked": {
                "objects": self.objects,
                "bytes": self.bytes,
                "outputs": self.outputs,
                "file_states": self.file_states,
                "pointers": self.pointers,
            },
            "findings": [{**asdict(f), "error": f.is_error} for f in self.findings],
        }


def verify(
    repo: Repo,
    *,
    repair: bool = False,
    tmp_grace: float = TMP_GRACE_SECONDS,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check every object, output row, stat-cache row and pointer file of `repo`.

    Args:
        repair: remove what is bad (see the module docstring); never removes orphaned objects.
        tmp_grace: temporary files younger than this many seconds are left alone.
        progress: called with the byte count of each object once it is hashed.
    """
    if repair:
        with exclusive_lock(repo, "merkl verify --repair"):
            return _verify(repo, True, tmp_grace, progress)
    return _verify(repo, False, tmp_grace, progress)


def _verify(
    repo: Repo, repair: bool, tmp_grace: float, progress: Callable[[int], None] | None
) -> VerifyReport:
    report = VerifyReport(repair=repair)
    oids, foreign = _scan_store(repo)  # before reading the index: see the module docstring
    report.findings += foreign
    corrupt = _check_objects(repo, oids, report, progress)
    index = _open_index(repo, report)
    referenced: set[str] | None = None
    inline: dict[str, int] = {}
    if index is not None:
        inline = _check_inline(repo, index, corrupt, report, progress)
        oids += [oid for oid in inline if oid not in corrupt]
        referenced = _check_outputs(repo, index, corrupt, inline, report)
        _check_file_states(repo, index, corrupt, report)
    pointer_oids = _check_pointers(repo, corrupt, report)
    intents = read_intents(repo)
    report.findings += [
        Finding(
            "unfinished-command",
            record.command,
            f"was killed before it finished (pid {record.pid}); run `{record.command}` again "
            f"to complete it",
        )
        for record in intents
        if record.unfinished
    ]
    if referenced is not None:
        linked = work_tree_links(repo).union(*(record.oids for record in intents))
        unreferenced = set(oids) - referenced - pointer_oids - corrupt - linked
        report.findings += [
            Finding(
                "orphaned-object",
                oid,
                f"{_size(repo, oid)} bytes; no output or pointer "
                f"file refers to it (`merkl gc` removes such objects)",
            )
            for oid in sorted(unreferenced)
            if repo.store.has(oid)
        ]
    report.findings += _tmp_files(repo, tmp_grace, repair)
    return report


def _check_objects(
    repo: Repo, oids: list[str], report: VerifyReport, progress: Callable[[int], None] | None
) -> set[str]:
    """Re-hash every object; remove the corrupt ones when repairing."""
    corrupt: set[str] = set()

    def check(oid: str) -> tuple[str, int, str | None]:
        path = repo.store.oid_to_path(oid)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return oid, -1, None  # removed meanwhile (gc, another verify)
        if not stat.S_ISREG(st.st_mode):
            return oid, 0, "not a regular file"
        try:
            matches = _object_matches(repo, oid, path, st.st_size)
        except OSError as exc:
            return oid, st.st_size, f"cannot be read: {exc}"
        return oid, st.st_size, None if matches else "its bytes do not hash to its name"

    def check_batch(batch: list[str]) -> list[tuple[str, int, str | None]]:
        return [check(oid) for oid in batch]

    # Batches: one future per small object would cost more than hashing it.
    batches = [oids[i : i + _BATCH] for i in range(0, len(oids), _BATCH)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        checked = (result for batch in pool.map(check_batch, batches) for result in batch)
        for oid, size, problem in checked:
            if size < 0:
                continue
            report.objects += 1
            report.bytes += size
            if progress is not None:
                progress(size)
            if problem is None:
                continue
            corrupt.add(oid)
            finding = Finding("corrupt-object", oid, problem)
            if report.repair:
                finding.repaired = _quarantine_object(repo, oid, finding)
            report.findings.append(finding)
    return corrupt


def _check_inline(
    repo: Repo,
    index: Index,
    corrupt: set[str],
    report: VerifyReport,
    progress: Callable[[int], None] | None,
) -> dict[str, int]:
    """Re-hash every inline object (small outputs kept in the index); returns the sizes of
    the sound ones by oid and adds the corrupt ones to `corrupt` (quarantined when repairing)."""
    sizes: dict[str, int] = {}
    for oid, data in index.iter_blobs():
        report.objects += 1
        report.bytes += len(data)
        if progress is not None:
            progress(len(data))
        if hash_bytes(data) == oid:
            sizes[oid] = len(data)
            continue
        corrupt.add(oid)
        finding = Finding("corrupt-object", oid, "its inline bytes do not hash to its name")
        if report.repair:
            moved = repo.store.quarantine_inline(oid)
            finding.detail += f"; moved to quarantine: {moved}"
            finding.repaired = True
        report.findings.append(finding)
    return sizes


def _object_matches(repo: Repo, oid: str, path: Path, size: int) -> bool:
    if size >= _SMALL:
        return repo.store.verify(oid)  # memory-mapped, multi-threaded BLAKE3
    with open(path, "rb") as handle:
        return hash_bytes(handle.read()) == oid


def _quarantine_object(repo: Repo, oid: str, finding: Finding) -> bool:
    path = repo.store.oid_to_path(oid)
    if os.path.isdir(path) and not os.path.islink(path):
        return False  # a directory squatting on an object name: left for a human
    try:
        moved = repo.store.quarantine(oid)
    except FileNotFoundError:
        return True  # gone meanwhile
    finding.detail += f"; moved to quarantine: {moved}"
    return not os.path.lexists(path)


def _open_index(repo: Repo, report: VerifyReport) -> Index | None:
    """The index if it is sound; otherwise a finding, and with repair a fresh empty index."""
    index = repo.index
    try:
        problems = index.check_integrity()
    except MerklError as exc:
        problems = [str(exc)]
    if not problems:
        return index
    finding = Finding("index-corrupt", str(index.path), "; ".join(problems[:5]))
    report.findings.append(finding)
    if not report.repair:
        return None
    index.close()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        old = Path(f"{index.path}{suffix}")
        if old.exists():
            os.replace(old, f"{index.path}.corrupt-{stamp}{suffix}")
    fresh = Index(index.path)
    fresh.find_output("0" * 64)  # creates the schema
    repo.__dict__["index"] = fresh  # later users of this Repo see the fresh index
    if repo.store.inline is not None:
        repo.store.inline = fresh  # the inline objects went with the old one
    finding.repaired = True
    finding.detail += f"; moved aside to {index.path.name}.corrupt-{stamp}"
    return fresh


def _check_outputs(
    repo: Repo, index: Index, corrupt: set[str], inline: dict[str, int], report: VerifyReport
) -> set[str]:
    """Check each output row against the store (`inline`: the sizes of the sound inline
    objects); return the oids the rows reference."""
    referenced: set[str] = set()
    bad: list[str] = []
    for entry in index.iter_outputs():
        report.outputs += 1
        referenced.add(entry.oid)
        if entry.oid in corrupt:
            kind, detail = "corrupt-output", f"its object {entry.oid} is corrupt"
        elif inline.get(entry.oid) == entry.size:
            continue
        elif not repo.store.has(entry.oid) and entry.remote is not None:
            # A Dask worker stored it there (`--worker-remote`): not a problem, a notice.
            detail = f"on remote {entry.remote} (object {entry.oid})"
            report.findings.append(Finding("on-remote", entry.out_hash, detail))
            continue
        elif not repo.store.has(entry.oid):
            kind, detail = "missing-object", f"its object {entry.oid} is not in the store"
        elif _size(repo, entry.oid) != entry.size:
            kind = "size-mismatch"
            detail = (
                f"index says {entry.size} bytes, object {entry.oid} has {_size(repo, entry.oid)}"
            )
        else:
            continue
        report.findings.append(Finding(kind, entry.out_hash, detail, repaired=report.repair))
        bad.append(entry.out_hash)
    if bad and report.repair:
        index.remove_outputs(bad)
    return referenced


def _check_file_states(repo: Repo, index: Index, corrupt: set[str], report: VerifyReport) -> None:
    """A row whose stat still matches must hash to its oid; other rows are merely stale."""
    remove: list[str] = []
    for path, inode, size, mtime_ns, oid in index.iter_file_states():
        report.file_states += 1
        if size == SMUDGED:
            continue  # racy when hashed: it records which content the path had, nothing more
        try:
            st = os.stat(path)
        except OSError:
            finding = Finding("stale-file-state", path, "file no longer exists")
        else:
            if (st.st_ino, st.st_size, st.st_mtime_ns) != (inode, size, mtime_ns):
                finding = Finding("stale-file-state", path, "file changed since it was hashed")
            elif oid not in corrupt and _is_object_itself(repo, st, oid):
                continue  # a tracked file linked to its object, which was just re-hashed
            else:
                try:
                    actual = hash_file(path)
                except OSError as exc:
                    actual = f"unreadable ({exc})"
                if actual == oid:
                    continue
                finding = Finding(
                    "wrong-file-state",
                    path,
                    f"stat cache says {oid} but the content hashes to {actual} (the file was "
                    f"changed without changing its size, mtime or inode)",
                )
        finding.repaired = report.repair
        report.findings.append(finding)
        remove.append(path)
    if remove and report.repair:
        index.remove_file_states(remove)


def _check_pointers(repo: Repo, corrupt: set[str], report: VerifyReport) -> set[str]:
    """Parse every pointer file; return the oids they (and directory manifests) reference."""
    oids: set[str] = set()
    for file in iter_pointer_files(repo.root):
        report.pointers += 1
        try:
            pointer = read_pointer(file)
            oids.update(_pointer_oids(repo, pointer, corrupt))
        except MerklError as exc:
            detail = str(exc).removeprefix(f"{file}: ")
            report.findings.append(Finding("invalid-pointer", str(file), detail))
    return oids


def _pointer_oids(repo: Repo, pointer: Pointer, corrupt: set[str]) -> Iterable[str]:
    if pointer.oid in corrupt:
        return [pointer.oid]  # reading a corrupt manifest would delete it: only repair may
    return list(iter_pointer_oids(repo, pointer))


def _scan_store(repo: Repo) -> tuple[list[str], list[Finding]]:
    """Every object id, in one walk of the objects folder, and the entries that are not
    objects (left alone, but worth knowing)."""
    oids: list[str] = []
    foreign: list[Finding] = []
    root = repo.store.root
    if not root.is_dir():
        return oids, foreign
    for prefix in sorted(os.listdir(root)):
        folder = root / prefix
        if not _OBJECT_DIR.fullmatch(prefix) or not folder.is_dir():
            foreign.append(Finding("foreign-file", str(folder), "not an object folder"))
            continue
        for rest in sorted(os.listdir(folder)):
            if _OBJECT_NAME.fullmatch(rest):
                oids.append(prefix + rest)
            else:
                foreign.append(Finding("foreign-file", str(folder / rest), "not an object name"))
    return oids, foreign


def _is_object_itself(repo: Repo, st: os.stat_result, oid: str) -> bool:
    """True when `st` is the store's object `oid` (a symlink or hardlink to it)."""
    try:
        obj = os.stat(repo.store.oid_to_path(oid))
    except OSError:
        return False
    return (st.st_ino, st.st_dev) == (obj.st_ino, obj.st_dev)


def _tmp_files(repo: Repo, grace: float, repair: bool) -> list[Finding]:
    """Temporary files left by killed writers; only old ones are removed (live writers)."""
    findings: list[Finding] = []
    if not repo.tmp_dir.is_dir():
        return findings
    now = time.time()
    for name in sorted(os.listdir(repo.tmp_dir)):
        path = repo.tmp_dir / name
        try:
            age = now - path.lstat().st_mtime
        except FileNotFoundError:
            continue  # its writer finished meanwhile
        finding = Finding("temp-file", str(path), f"left by an interrupted write {age:.0f}s ago")
        if repair and age >= grace and not path.is_dir():
            path.unlink(missing_ok=True)
            finding.repaired = True
        findings.append(finding)
    return findings


def _size(repo: Repo, oid: str) -> int:
    try:
        return repo.store.size(oid)
    except FileNotFoundError:
        return -1
