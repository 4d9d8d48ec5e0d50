"""The local index: `.merkl/index.sqlite` in WAL mode.

Tables:
- `outputs`: Merkle hash of a task output → oid of its serialized bytes, serializer, size.
- `runs`: one row per computed output (task, module, code hash, argument hashes, parents,
  duration, size, time) — the provenance log.
- `code_parts`: code hash → the digests of its parts by label (`function helper`, …), so
  `merkl why` can name the part of a task's code that changed.
- `file_state`: (path, inode, size, mtime_ns) → oid, so unchanged files are never re-read.
- `folder_state`: tracked folder → (pointer oid, fingerprint, listing) as last seen clean
  (`merkl.tracking.snapshot`).

One connection per thread and per process (sqlite3 connections are not shareable); every
statement runs in autocommit or a short `BEGIN IMMEDIATE` transaction, with a busy timeout and a
retry with backoff, so concurrent writers wait instead of failing with "database is locked".
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from merkl.errors import CacheError

SCHEMA_VERSION = 1
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outputs (
    out_hash TEXT PRIMARY KEY,
    oid TEXT NOT NULL,
    serializer TEXT NOT NULL,
    size INTEGER NOT NULL,
    pushable INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outputs_oid ON outputs (oid);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    out_hash TEXT NOT NULL,
    out_index INTEGER NOT NULL,
    task TEXT NOT NULL,
    module TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    args_hash TEXT NOT NULL,
    arg_hashes TEXT NOT NULL,
    parents TEXT NOT NULL,
    duration REAL NOT NULL,
    size INTEGER NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_out_hash ON runs (out_hash);
-- The repr of small scalar argument values, by their argument hash (the run log stores hashes),
-- so `merkl why` can say `epochs: 10 → 20`. A table of its own: older indexes gain it as is.
CREATE TABLE IF NOT EXISTS output_use (out_hash TEXT PRIMARY KEY, used REAL NOT NULL);
CREATE TABLE IF NOT EXISTS arg_values (arg_hash TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_task ON runs (module, task);
CREATE TABLE IF NOT EXISTS code_parts (
    code_hash TEXT PRIMARY KEY,
    parts TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS file_state (
    path TEXT PRIMARY KEY,
    inode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    oid TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS folder_state (
    path TEXT PRIMARY KEY,
    oid TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    listing BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OutputEntry:
    """Where a cached output lives."""

    out_hash: str
    oid: str
    serializer: str
    size: int
    pushable: bool


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One computed output, as logged in `runs`."""

    out_hash: str
    out_index: int
    task: str
    module: str
    code_hash: str
    args_hash: str
    arg_hashes: dict[str, str]
    parents: list[str]
    duration: float
    size: int
    time: float
    # argument hash -> repr, for small scalar arguments (written to `arg_values`, not `runs`)
    arg_values: dict[str, str] = field(default_factory=dict, compare=False)


class Index:
    """Thread- and process-safe access to `index.sqlite`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._schema_ready = False

    # -- connection management ------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = self._connect()
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=60, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout = 60000")
            conn.execute("PRAGMA synchronous = NORMAL")
            if not self._schema_ready:
                _retry(lambda: self._init_schema(conn))
                self._schema_ready = True
        except sqlite3.DatabaseError as exc:
            raise CacheError(
                f"cannot open the index {self.path}: {exc}; run `merkl verify --repair` or "
                f"delete the file to rebuild it"
            ) from exc
        return conn

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_SCHEMA)
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
        )

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        return _retry(lambda: self._connection().execute(sql, tuple(params)).fetchall())

    def _write(self, statements: Callable[[sqlite3.Connection], _T]) -> _T:
        def transaction() -> _T:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = statements(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return _retry(transaction)

    # -- outputs --------------------------------------------------------------------------
    def find_output(self, out_hash: str) -> OutputEntry | None:
        rows = self._read(
            "SELECT out_hash, oid, serializer, size, pushable FROM outputs WHERE out_hash = ?",
            (out_hash,),
        )
        return _entry(rows[0]) if rows else None

    def add_outputs(
        self,
        entries: Iterable[OutputEntry],
        runs: Iterable[RunRecord] = (),
        code_parts: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Record outputs (first writer wins), their run-log rows and the parts of their code
        hashes in one transaction."""
        import orjson  # not at module level: `merkl status` opens the index, never the run log

        now = time.time()
        output_rows = [
            (e.out_hash, e.oid, e.serializer, e.size, int(e.pushable), now) for e in entries
        ]
        run_rows = [
            (
                r.out_hash,
                r.out_index,
                r.task,
                r.module,
                r.code_hash,
                r.args_hash,
                orjson.dumps(r.arg_hashes, option=orjson.OPT_SORT_KEYS).decode(),
                orjson.dumps(r.parents).decode(),
                r.duration,
                r.size,
                r.time,
            )
            for r in runs
        ]
        value_rows = sorted({item for r in runs for item in r.arg_values.items()})
        parts_rows = [
            (code_hash, orjson.dumps(parts, option=orjson.OPT_SORT_KEYS).decode())
            for code_hash, parts in (code_parts or {}).items()
        ]

        def insert(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR IGNORE INTO outputs (out_hash, oid, serializer, size, pushable, "
                "created) VALUES (?, ?, ?, ?, ?, ?)",
                output_rows,
            )
            conn.executemany(
                "INSERT INTO runs (out_hash, out_index, task, module, code_hash, args_hash, "
                "arg_hashes, parents, duration, size, time) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                run_rows,
            )
            if value_rows:
                conn.executemany(
                    "INSERT OR IGNORE INTO arg_values (arg_hash, text) VALUES (?, ?)", value_rows
                )
            conn.executemany(
                "INSERT OR IGNORE INTO code_parts (code_hash, parts) VALUES (?, ?)", parts_rows
            )

        self._write(insert)

    def find_code_parts(self, code_hash: str) -> dict[str, str] | None:
        """The parts of `code_hash` as recorded when a task with that code last ran."""
        import orjson

        rows = self._read("SELECT parts FROM code_parts WHERE code_hash = ?", (code_hash,))
        return orjson.loads(rows[0][0]) if rows else None

    def remove_outputs(self, out_hashes: Iterable[str]) -> None:
        rows = [(h,) for h in out_hashes]
        self._write(lambda conn: conn.executemany("DELETE FROM outputs WHERE out_hash = ?", rows))

    def mark_used(self, out_hashes: Iterable[str], when: float) -> None:
        """Record that these outputs were read at `when` (one transaction for the batch)."""
        rows = [(h, when) for h in out_hashes]
        if rows:
            self._write(
                lambda conn: conn.executemany(
                    "INSERT INTO output_use (out_hash, used) VALUES (?, ?) "
                    "ON CONFLICT(out_hash) DO UPDATE SET used = MAX(used, excluded.used)",
                    rows,
                )
            )

    def iter_output_use(self) -> Iterator[tuple[OutputEntry, float]]:
        """Every output with its last use (its creation if never read since)."""
        for row in self._read(
            "SELECT o.out_hash, o.oid, o.serializer, o.size, o.pushable, "
            "MAX(o.created, COALESCE(u.used, 0)) FROM outputs o "
            "LEFT JOIN output_use u ON u.out_hash = o.out_hash"
        ):
            yield OutputEntry(row[0], row[1], row[2], row[3], bool(row[4])), float(row[5])

    def task_outputs(self) -> dict[str, set[str]]:
        """`module.task` → the out_hashes of its cached outputs (from the run log)."""
        found: dict[str, set[str]] = {}
        for module, task, out_hash in self._read(
            "SELECT DISTINCT r.module, r.task, r.out_hash FROM runs r "
            "JOIN outputs o ON o.out_hash = r.out_hash"
        ):
            found.setdefault(f"{module}.{task}", set()).add(out_hash)
        return found

    def iter_outputs(self) -> Iterator[OutputEntry]:
        for row in self._read("SELECT out_hash, oid, serializer, size, pushable FROM outputs"):
            yield _entry(row)

    # -- run log --------------------------------------------------------------------------
    def arg_values(self, arg_hashes: Iterable[str]) -> dict[str, str]:
        """The logged repr of each argument hash that has one (small scalars only)."""
        wanted = list(dict.fromkeys(arg_hashes))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ",".join("?" * len(part))
            sql = f"SELECT arg_hash, text FROM arg_values WHERE arg_hash IN ({marks})"
            found.update((row[0], row[1]) for row in self._read(sql, part))
        return found

    def iter_runs(
        self, *, out_hash: str | None = None, limit: int | None = None
    ) -> Iterator[RunRecord]:
        sql = (
            "SELECT out_hash, out_index, task, module, code_hash, args_hash, arg_hashes, "
            "parents, duration, size, time FROM runs"
        )
        params: list[Any] = []
        if out_hash is not None:
            sql += " WHERE out_hash = ?"
            params.append(out_hash)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        import orjson

        for row in self._read(sql, params):
            yield RunRecord(
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                orjson.loads(row[6]),
                orjson.loads(row[7]),
                row[8],
                row[9],
                row[10],
            )

    # -- stat cache -----------------------------------------------------------------------
    def find_file_oid(self, path: str, inode: int, size: int, mtime_ns: int) -> str | None:
        rows = self._read(
            "SELECT oid FROM file_state WHERE path = ? AND inode = ? AND size = ? "
            "AND mtime_ns = ?",
            (path, inode, size, mtime_ns),
        )
        return rows[0][0] if rows else None

    def set_file_oids(self, states: Iterable[tuple[str, int, int, int, str]]) -> None:
        """Record (path, inode, size, mtime_ns, oid) rows."""
        rows = list(states)
        self._write(
            lambda conn: conn.executemany(
                "INSERT OR REPLACE INTO file_state (path, inode, size, mtime_ns, oid) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        )

    def iter_file_states(self) -> Iterator[tuple[str, int, int, int, str]]:
        """Every (path, inode, size, mtime_ns, oid) row of the stat cache (for `merkl verify`)."""
        yield from self._read("SELECT path, inode, size, mtime_ns, oid FROM file_state")

    def remove_file_states(self, paths: Iterable[str]) -> None:
        rows = [(p,) for p in paths]
        self._write(lambda conn: conn.executemany("DELETE FROM file_state WHERE path = ?", rows))

    # -- folder fingerprints (merkl.tracking.snapshot) -----------------------------------
    def find_dir_snapshot(self, path: str) -> tuple[str, str, bytes] | None:
        """(pointer oid, fingerprint, listing) recorded when the folder at `path` was clean."""
        rows = self._read(
            "SELECT oid, fingerprint, listing FROM folder_state WHERE path = ?", (path,)
        )
        return (rows[0][0], rows[0][1], bytes(rows[0][2])) if rows else None

    def set_dir_snapshot(self, path: str, oid: str, fingerprint: str, listing: bytes) -> None:
        self._write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO folder_state (path, oid, fingerprint, listing) "
                "VALUES (?, ?, ?, ?)",
                (path, oid, fingerprint, listing),
            )
        )

    def check_integrity(self) -> list[str]:
        """SQLite's own consistency check: an empty list when the database file is sound."""
        rows = self._read("PRAGMA integrity_check")
        return [str(row[0]) for row in rows if row[0] != "ok"]


def _entry(row: Any) -> OutputEntry:
    return OutputEntry(row[0], row[1], row[2], row[3], bool(row[4]))


def _retry(operation: Callable[[], _T], attempts: int = 50) -> _T:
    """Run `operation`, retrying with jittered backoff while the database is locked or busy."""
    delay = 0.005
    for attempt in range(attempts):
        try:
            return operation()
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if ("locked" not in message and "busy" not in message) or attempt == attempts - 1:
                raise CacheError(f"index database error: {exc}") from exc
            import random  # only when the database is busy

            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)
        except sqlite3.DatabaseError as exc:  # "database disk image is malformed" and kin
            raise CacheError(
                f"index database error: {exc}; run `merkl verify --repair` to move the damaged "
                f"index aside (cached outputs are then recomputed)"
            ) from exc
    raise AssertionError("unreachable")
