"""The local index: `.merkl/index.sqlite` in WAL mode.

Tables:
- `outputs`: Merkle hash of a task output → oid of its serialized bytes, serializer, size, and
  `remote`: the name of the remote holding the object when a worker stored it there and this
  store may lack it (`merkl run --worker-remote`; NULL: the local store has it).
- `runs`: one row per computed output (task, module, code hash, argument hashes, parents,
  duration, size, time) — the provenance log.
- `code_parts`: code hash → the digests of its parts by label (`function helper`, …), so
  `merkl why` can name the part of a task's code that changed.
- `file_state`: (path, inode, size, mtime_ns) → oid, so unchanged files are never re-read.
- `folder_state`: tracked folder → (pointer oid, fingerprint, listing) as last seen clean
  (`merkl.tracking.snapshot`).
- `blobs`: oid → bytes of objects too small to deserve a file of their own (task outputs
  below `[cache] inline_max`, 4 KiB by default): an object file costs a 4 KiB block and an
  inode, a row a few dozen bytes. The object store reads them like its files
  (`ObjectStore.inline`), verified by hash on every read. A blob row is written in the same
  transaction as the output row naming it, so an output is never visible without its bytes.
  Indexes created before this table gain it when opened (`CREATE TABLE IF NOT EXISTS`);
  earlier merkl versions see those outputs as missing objects and recompute them.

One connection per thread and per process (sqlite3 connections are not shareable); every
statement runs in autocommit or a short `BEGIN IMMEDIATE` transaction, with a busy timeout and a
retry with backoff, so concurrent writers wait instead of failing with "database is locked".

Inside `batched()` (a run: `merkl.evaluate`), `add_outputs` keeps its rows in the calling
thread's memory and writes them in one transaction every `BATCH_ROWS` outputs, every
`BATCH_SECONDS`, and when the batch ends (also on an error): one commit for hundreds of outputs
instead of one each. It is crash-safe because a row is only ever written after its object
(`Cache.save` stores the object first, fsynced under `[core] fsync = true`; an inline blob goes
in the same transaction as its row): a kill -9 loses at most the pending rows, whose outputs
are then computed again, and leaves orphan objects that `merkl gc` removes. Until written,
pending rows are seen by `find_output` in the same thread only; any other method of this thread
writes them first.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from merkl.errors import CacheError

SCHEMA_VERSION = 2  # 2: the `blobs` table
BATCH_ROWS = 512  # pending outputs written in one transaction
BATCH_SECONDS = 0.25  # oldest pending row waits at most this long (checked on each add)
_CACHE_KIB = 32 << 10  # SQLite's page cache per connection, at most (filled as pages are read)
_CHECKPOINT_PAGES = 10_000  # WAL pages (4 KiB) written before SQLite checkpoints on its own
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outputs (
    out_hash TEXT PRIMARY KEY,
    oid TEXT NOT NULL,
    serializer TEXT NOT NULL,
    size INTEGER NOT NULL,
    pushable INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL,
    remote TEXT
);
-- (An index on outputs.oid, which no query used, cost a random-order b-tree insert per output.)
DROP INDEX IF EXISTS outputs_oid;
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
-- A rowid table, not WITHOUT ROWID: a row up to ~4 KB stays on its leaf page (an index b-tree
-- would spill anything over ~1 KB to an overflow page of its own).
CREATE TABLE IF NOT EXISTS blobs (oid TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS folder_state (
    path TEXT PRIMARY KEY,
    oid TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    listing BLOB NOT NULL
);
"""


_FIND_OUTPUT = "SELECT oid, serializer, size, pushable, remote FROM outputs WHERE out_hash = ?"

# This process's id, renewed in a forked child: a connection is never used across a fork,
# and `os.getpid()` is a system call on every lookup.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork
    os.register_at_fork(after_in_child=_forked)


@dataclass(frozen=True, slots=True)
class OutputEntry:
    """Where a cached output lives."""

    out_hash: str
    oid: str
    serializer: str
    size: int
    pushable: bool
    remote: str | None = None  # the remote holding the object, if not the local store


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
        self._parts_written: set[str] = set()  # code hashes whose parts this process wrote

    # -- batched writes (see the module docstring) ------------------------------------------
    @contextmanager
    def batched(self, sync_objects: Callable[[list[str]], None] | None = None) -> Iterator[None]:
        """Buffer this thread's `add_outputs` until the outermost batch ends (nestable).

        `sync_objects` makes the objects handed to `hold_object` durable; it runs before each
        write of the pending rows, so a row never refers to an object a power cut could lose.
        """
        local = self._local
        depth = getattr(local, "batch_depth", 0)
        if depth == 0:
            local.pending = _Pending(sync_objects)
        local.batch_depth = depth + 1
        try:
            yield
        finally:
            local.batch_depth = depth
            if depth == 0:
                try:
                    self.flush()
                finally:
                    local.pending = None

    def flush(self) -> None:
        """Write this thread's pending rows now, in one transaction."""
        pending: _Pending | None = getattr(self._local, "pending", None)
        if pending is None:
            return
        if pending.pid != os.getpid():
            pending.clear()  # inherited through fork: the parent writes them
            pending.after_write.clear()
            return
        try:
            if pending:
                objects, sync_objects = pending.objects, pending.sync_objects
                rows = pending.take()
                if objects and sync_objects is not None:
                    sync_objects(objects)
                self._insert(*rows)
        finally:
            callbacks, pending.after_write = pending.after_write, []
            for callback in callbacks:
                callback()

    def after_flush(self, callback: Callable[[], None]) -> bool:
        """Run `callback` once this thread's pending rows are written (True), or tell the
        caller to run it now (False) when nothing is pending: a lease on an output is released
        only when another process can see the output (`merkl.cache.lease`)."""
        pending: _Pending | None = getattr(self._local, "pending", None)
        if not pending or pending.pid != os.getpid():
            return False
        pending.after_write.append(callback)
        return True

    def hold_object(self, oid: str) -> bool:
        """True when this thread's open batch takes object `oid`, stored without its fsync:
        the batch syncs it before writing any row (see `batched`)."""
        pending: _Pending | None = getattr(self._local, "pending", None)
        if pending is None or pending.sync_objects is None:
            return False
        pending.objects.append(oid)
        return True

    # -- connection management ------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != _pid:
            conn = self._connect()
            self._local.conn = conn
            self._local.pid = _pid
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=60, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout = 60000")
            conn.execute("PRAGMA synchronous = NORMAL")
            # Output hashes are random keys: each batch of rows dirties pages all over the
            # b-trees. A larger page cache and a checkpoint every ~40 MB of WAL instead of
            # every 4 MB (each checkpoint copies those pages and syncs twice) made 100,000
            # rows in batches of 512 take 12-17 s instead of 55 s on the build machine.
            conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
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
        columns = {row[1] for row in conn.execute("PRAGMA table_info(outputs)")}
        if "remote" not in columns:  # an index written before worker remotes
            conn.execute("ALTER TABLE outputs ADD COLUMN remote TEXT")
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', ?) ON CONFLICT(key) DO UPDATE "
            "SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
            (str(SCHEMA_VERSION),),
        )

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        if getattr(self._local, "pending", None):
            self.flush()  # this thread reads what it wrote
        return self._read_written(sql, params)

    def _read_written(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """`_read` of the database alone, without writing the pending rows first."""
        return _retry(lambda: self._connection().execute(sql, tuple(params)).fetchall())

    def _write(self, statements: Callable[[sqlite3.Connection], _T]) -> _T:
        if getattr(self._local, "pending", None):
            self.flush()  # keep this thread's writes in order
        return self._transaction(statements)

    def _transaction(self, statements: Callable[[sqlite3.Connection], _T]) -> _T:
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
        # The first lookup of every cache hit: one statement straight on the connection
        # (sqlite3 keeps it prepared); only a failing one goes through `_read`'s retries.
        local = self._local
        pending: _Pending | None = getattr(local, "pending", None)
        if pending is not None and out_hash in pending.outputs:
            return _entry(pending.outputs[out_hash])
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != _pid:
            conn = self._connection()
        try:
            row = conn.execute(_FIND_OUTPUT, (out_hash,)).fetchone()
        except sqlite3.Error:  # busy, locked or damaged: retried or reported as usual
            rows = self._read_written(_FIND_OUTPUT, (out_hash,))
            row = rows[0] if rows else None
        if row is None:
            return None
        return OutputEntry(out_hash, row[0], row[1], row[2], bool(row[3]), row[4])

    def find_outputs(self, out_hashes: Iterable[str]) -> dict[str, OutputEntry]:
        """`find_output` of many hashes: one query per 500 of them (a DAG's thousands of nodes
        cost a few queries, not one each); hashes not indexed are absent from the result."""
        wanted = list(dict.fromkeys(out_hashes))
        found: dict[str, OutputEntry] = {}
        pending: _Pending | None = getattr(self._local, "pending", None)
        if pending:
            found.update((h, _entry(pending.outputs[h])) for h in wanted if h in pending.outputs)
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ",".join("?" * len(part))
            sql = f"SELECT {_ENTRY} FROM outputs WHERE out_hash IN ({marks})"
            for row in self._read_written(sql, part):
                found.setdefault(row[0], _entry(row))
        return found

    def add_outputs(
        self,
        entries: Iterable[OutputEntry],
        runs: Iterable[RunRecord] = (),
        code_parts: Mapping[str, Mapping[str, str]] | None = None,
        blobs: Mapping[str, bytes] | None = None,
    ) -> None:
        """Record outputs (first writer wins), their run-log rows, the parts of their code
        hashes and the inline bytes (`blobs`, {oid: bytes}) of small ones in one transaction."""
        import orjson  # not at module level: `merkl status` opens the index, never the run log

        now = time.time()
        output_rows = [
            (e.out_hash, e.oid, e.serializer, e.size, int(e.pushable), e.remote, now)
            for e in entries  # in `_entry`'s order, as pending rows are read back
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
            if code_hash not in self._parts_written  # a run of one task: written once
        ]

        blob_rows = list((blobs or {}).items())
        pending: _Pending | None = getattr(self._local, "pending", None)
        if pending is not None:
            pending.add(output_rows, run_rows, value_rows, parts_rows, blob_rows)
            if pending.due():
                self.flush()
            return
        self._insert(output_rows, run_rows, value_rows, parts_rows, blob_rows)

    def _insert(
        self,
        output_rows: list[tuple[Any, ...]],
        run_rows: list[tuple[Any, ...]],
        value_rows: list[tuple[str, str]],
        parts_rows: list[tuple[str, str]],
        blob_rows: list[tuple[str, bytes]],
    ) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            if blob_rows:  # in the transaction of the rows naming them
                conn.executemany(
                    "INSERT OR IGNORE INTO blobs (oid, data) VALUES (?, ?)", blob_rows
                )
            conn.executemany(
                "INSERT OR IGNORE INTO outputs (out_hash, oid, serializer, size, pushable, "
                "remote, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
            if parts_rows:
                conn.executemany(
                    "INSERT OR IGNORE INTO code_parts (code_hash, parts) VALUES (?, ?)",
                    parts_rows,
                )

        self._transaction(insert)
        self._parts_written.update(code_hash for code_hash, _ in parts_rows)

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
            "SELECT o.out_hash, o.oid, o.serializer, o.size, o.pushable, o.remote, "
            "MAX(o.created, COALESCE(u.used, 0)) FROM outputs o "
            "LEFT JOIN output_use u ON u.out_hash = o.out_hash"
        ):
            yield _entry(row), float(row[6])

    def outputs_size(self) -> int:
        """The bytes of every cached output's object, counted once per output."""
        return int(self._read("SELECT COALESCE(SUM(size), 0) FROM outputs")[0][0])

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
        for row in self._read(f"SELECT {_ENTRY} FROM outputs"):
            yield _entry(row)

    # -- inline objects (the `blobs` table; `ObjectStore.inline`) -------------------------
    def find_blob(self, oid: str) -> bytes | None:
        """The inline bytes of `oid` (this thread's pending ones too), unverified."""
        pending: _Pending | None = getattr(self._local, "pending", None)
        if pending is not None and oid in pending.blobs:
            return pending.blobs[oid]
        rows = self._read_written("SELECT data FROM blobs WHERE oid = ?", (oid,))
        return bytes(rows[0][0]) if rows else None

    def has_blob(self, oid: str) -> bool:
        pending: _Pending | None = getattr(self._local, "pending", None)
        if pending is not None and oid in pending.blobs:
            return True
        return bool(self._read_written("SELECT 1 FROM blobs WHERE oid = ?", (oid,)))

    def find_blobs(self, oids: Iterable[str]) -> set[str]:
        """The subset of `oids` held inline: one query per 500."""
        wanted = list(dict.fromkeys(oids))
        pending: _Pending | None = getattr(self._local, "pending", None)
        found = {o for o in wanted if o in pending.blobs} if pending else set()
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ",".join("?" * len(part))
            sql = f"SELECT oid FROM blobs WHERE oid IN ({marks})"
            found.update(row[0] for row in self._read_written(sql, part))
        return found

    def blob_size(self, oid: str) -> int | None:
        rows = self._read("SELECT length(data) FROM blobs WHERE oid = ?", (oid,))
        return int(rows[0][0]) if rows else None

    def put_blobs(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store inline objects now, in one transaction (objects pulled from a remote)."""
        rows = list(items)
        if rows:
            self._write(
                lambda conn: conn.executemany(
                    "INSERT OR IGNORE INTO blobs (oid, data) VALUES (?, ?)", rows
                )
            )

    def remove_blobs(self, oids: Iterable[str]) -> None:
        rows = [(oid,) for oid in oids]
        if rows:
            self._write(lambda conn: conn.executemany("DELETE FROM blobs WHERE oid = ?", rows))

    def iter_blob_sizes(self) -> Iterator[tuple[str, int]]:
        """(oid, size) of every inline object."""
        for oid, size in self._read("SELECT oid, length(data) FROM blobs ORDER BY oid"):
            yield oid, int(size)

    def iter_blobs(self, page: int = 1000) -> Iterator[tuple[str, bytes]]:
        """(oid, bytes) of every inline object, read `page` rows at a time (`merkl verify`)."""
        after = ""
        while True:
            rows = self._read(
                "SELECT oid, data FROM blobs WHERE oid > ? ORDER BY oid LIMIT ?", (after, page)
            )
            for oid, data in rows:
                yield oid, bytes(data)
            if len(rows) < page:
                return
            after = rows[-1][0]

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

    def iter_file_states(
        self, under: str | None = None
    ) -> Iterator[tuple[str, int, int, int, str]]:
        """Every (path, inode, size, mtime_ns, oid) row of the stat cache (for `merkl verify`),
        or only those of files under the folder `under` (a range of the primary key)."""
        sql = "SELECT path, inode, size, mtime_ns, oid FROM file_state"
        if under is None:
            yield from self._read(sql)
            return
        low = os.path.join(under, "")  # "/" + 1 is "0": every path below `under`, no other
        yield from self._read(f"{sql} WHERE path >= ? AND path < ?", (low, low[:-1] + "0"))

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


class _Pending:
    """Rows of a batch not yet written; outputs by hash (first writer wins, as in SQL)."""

    __slots__ = (
        "after_write",
        "blobs",
        "objects",
        "outputs",
        "parts",
        "pid",
        "runs",
        "since",
        "sync_objects",
        "values",
    )

    def __init__(self, sync_objects: Callable[[list[str]], None] | None = None) -> None:
        self.sync_objects = sync_objects
        self.pid = os.getpid()  # a forked child never writes its parent's rows
        # Run once the rows pending now are written (leases released only then).
        self.after_write: list[Callable[[], None]] = []
        self.clear()

    def clear(self) -> None:
        self.objects: list[str] = []  # stored unsynced, synced before the rows are written
        self.blobs: dict[str, bytes] = {}  # inline objects, written with the rows
        self.outputs: dict[str, tuple[Any, ...]] = {}
        self.runs: list[tuple[Any, ...]] = []
        self.values: dict[str, str] = {}
        self.parts: dict[str, str] = {}
        self.since = 0.0

    def __bool__(self) -> bool:
        return bool(self.outputs or self.runs)

    def add(
        self,
        outputs: list[tuple[Any, ...]],
        runs: list[tuple[Any, ...]],
        values: list[tuple[str, str]],
        parts: list[tuple[str, str]],
        blobs: list[tuple[str, bytes]],
    ) -> None:
        if not self:
            self.since = time.monotonic()
        for row in outputs:
            self.outputs.setdefault(row[0], row)
        self.blobs.update(blobs)
        self.runs.extend(runs)
        self.values.update(values)
        self.parts.update(parts)

    def due(self) -> bool:
        return bool(self) and (
            len(self.outputs) + len(self.runs) >= 2 * BATCH_ROWS
            or time.monotonic() - self.since >= BATCH_SECONDS
        )

    def take(
        self,
    ) -> tuple[
        list[tuple[Any, ...]],
        list[tuple[Any, ...]],
        list[tuple[str, str]],
        list[tuple[str, str]],
        list[tuple[str, bytes]],
    ]:
        rows = (
            list(self.outputs.values()),
            self.runs,
            sorted(self.values.items()),
            list(self.parts.items()),
            list(self.blobs.items()),
        )
        self.clear()
        return rows


_ENTRY = "out_hash, oid, serializer, size, pushable, remote"  # the columns `_entry` reads


def _entry(row: Any) -> OutputEntry:
    return OutputEntry(row[0], row[1], row[2], row[3], bool(row[4]), row[5])


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
