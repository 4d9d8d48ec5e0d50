"""A SQL remote through SQLAlchemy: `sqlite:///…`, `postgresql://…`, `mysql+pymysql://…`.

One table (option `table`, default `merkl_objects`; option `schema`), created on the first push:
`(key, part, data)`. A blob is split into rows of `chunk_size` bytes (parts 0…n-1), then a
marker row `part = -1` holding `{"parts": n, "size": s}` is inserted last; a key is complete
exactly when its marker exists, so an interrupted push is invisible and simply redone. Big
blobs are written a few chunks per transaction and read back a few chunks per query, so memory
stays bounded.

Leases (`lease = true`) are rows `(leases/<hash>, -2, token:expiry)` of the same table: taking
one is an insert the primary key makes atomic; an expired one is replaced, and a lease is
renewed or dropped, only by a statement that names its exact row (compare-and-swap). Expiry uses
the clones' clocks, which must agree to well within `lease_ttl`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import orjson

from merkl.errors import CacheMissError, RemoteError
from merkl.remotes.base import Remote, Source
from merkl.remotes.urls import mask_url

_T = TypeVar("_T")
_CHUNK = 1 << 20
_CHUNKS_PER_TRANSACTION = 8
_IN_BATCH = 500
_LEASE_PART = -2  # beside the blob parts (0…n-1) and the marker (-1): `has` and `list` skip it


class SqlRemote(Remote):
    """Blobs in one table of a SQL database."""

    default_jobs = 4
    batch_items = 64
    batch_bytes = 8 << 20
    known_options = frozenset({"table", "schema", "chunk_size", "lock_timeout"})
    supports_gc = True

    def __init__(
        self, url: str, *, name: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(url, name=name, options=options)
        self.table_name = str(self.options.get("table", "merkl_objects"))
        self.schema = self.options.get("schema") or None
        self.chunk_size = int(self.options.get("chunk_size", _CHUNK))
        if url.startswith("sqlite"):
            self.default_jobs = 1  # SQLite has one writer at a time; threads only contend
        self._table_exists = False

    @property
    def label(self) -> str:
        """A relative `sqlite:///x.db` is opened from the working directory: say where."""
        file = _relative_sqlite_file(self.url)
        if file is None:
            return super().label
        shown = f"{mask_url(self.url)}, file {file}"
        return f"remote {self.name!r} ({shown})" if self.name else f"remote {shown}"

    @functools.cached_property
    def engine(self) -> Any:
        import sqlalchemy as sa

        try:
            if self.url.startswith("sqlite"):
                return sa.create_engine(self.url, connect_args={"timeout": 60})
            return sa.create_engine(
                self.url, pool_size=self.default_jobs + 1, max_overflow=4, pool_pre_ping=True
            )
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise self.error("invalid database URL or missing driver", exc) from exc

    @functools.cached_property
    def table(self) -> Any:
        import sqlalchemy as sa
        from sqlalchemy.dialects import mysql

        blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
        return sa.Table(
            self.table_name,
            sa.MetaData(),
            sa.Column("key", sa.String(128), primary_key=True),
            sa.Column("part", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("data", blob, nullable=False),
            schema=self.schema,
        )

    @property
    def _where(self) -> str:
        schema = f" in schema {self.schema!r}" if self.schema else ""
        return f"table {self.table_name!r}{schema}"

    def _call(self, operation: Callable[[], _T]) -> _T:
        import sqlalchemy as sa

        try:
            return operation()
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise self.error(f"database error: {detail}") from exc
        except sa.exc.ProgrammingError as exc:
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise self.error(f"database error on {self._where}: {detail}") from exc

    def prepare(self, *, write: bool) -> None:
        if self._table_exists:
            return
        import sqlalchemy as sa

        def check() -> bool:
            with self.engine.connect() as conn:
                return bool(sa.inspect(conn).has_table(self.table_name, schema=self.schema))

        exists = self._call(check)
        if not exists and not write:
            raise self.error(
                f"{self._where} does not exist", hint="push to this remote first (it creates it)"
            )
        if not exists:
            try:
                self._call(lambda: self.table.metadata.create_all(self.engine, checkfirst=True))
            except RemoteError:
                if not self._call(check):  # another process may have created it meanwhile
                    raise
        self._table_exists = True

    def has(self, keys: Sequence[str]) -> set[str]:
        table = self.table
        found: set[str] = set()
        for start in range(0, len(keys), _IN_BATCH):
            part = list(keys[start : start + _IN_BATCH])
            query = (
                table.select()
                .with_only_columns(table.c.key)
                .where(table.c.part == -1, table.c.key.in_(part))
            )
            found.update(self._query_column(query))
        return found

    def _query_column(self, query: Any) -> list[Any]:
        def run() -> list[Any]:
            with self.engine.connect() as conn:
                return [row[0] for row in conn.execute(query)]

        return self._call(run)

    def get(self, items: Sequence[tuple[str, Path]]) -> None:
        table = self.table
        keys = [key for key, _ in items]
        query = (
            table.select()
            .with_only_columns(table.c.key, table.c.data)
            .where(table.c.part == -1, table.c.key.in_(keys))
        )

        def markers() -> dict[str, bytes]:
            with self.engine.connect() as conn:
                return {row[0]: bytes(row[1]) for row in conn.execute(query)}

        found = self._call(markers)
        for key, dest in items:
            if key not in found:
                raise CacheMissError(f"{key} is not on {self.label}", key=key, remote=self.name)
            parts = int(orjson.loads(found[key])["parts"])
            with open(dest, "wb") as handle:
                self._read_parts(key, parts, handle)

    def _read_parts(self, key: str, parts: int, handle: BinaryIO) -> None:
        table = self.table
        for start in range(0, parts, _CHUNKS_PER_TRANSACTION):
            stop = min(parts, start + _CHUNKS_PER_TRANSACTION)
            query = (
                table.select()
                .with_only_columns(table.c.part, table.c.data)
                .where(table.c.key == key, table.c.part >= start, table.c.part < stop)
                .order_by(table.c.part)
            )

            def rows(query: Any = query) -> list[Any]:
                with self.engine.connect() as conn:
                    return list(conn.execute(query))

            chunk_rows = self._call(rows)
            if [row[0] for row in chunk_rows] != list(range(start, stop)):
                raise RemoteError(f"{self.label}: parts of {key} are missing; push it again")
            for row in chunk_rows:
                handle.write(row[1])

    def put(self, items: Sequence[tuple[str, Source]]) -> None:
        small: list[tuple[str, bytes]] = []
        for key, source in items:
            if isinstance(source, bytes):
                small.append((key, source))
            elif source.stat().st_size <= self.chunk_size * _CHUNKS_PER_TRANSACTION:
                small.append((key, source.read_bytes()))
            else:
                self._put_large(key, source)
        if small:
            self._write_rows(
                [k for k, _ in small],
                [row for key, data in small for row in self._rows(key, data)],
            )

    def _rows(self, key: str, data: bytes) -> list[dict[str, Any]]:
        step = self.chunk_size
        rows = [
            {"key": key, "part": i, "data": data[offset : offset + step]}
            for i, offset in enumerate(range(0, max(len(data), 1), step))
        ]
        return [*rows, self._marker(key, len(rows), len(data))]

    @staticmethod
    def _marker(key: str, parts: int, size: int) -> dict[str, Any]:
        return {"key": key, "part": -1, "data": orjson.dumps({"parts": parts, "size": size})}

    def _write_rows(self, replace: list[str], rows: list[dict[str, Any]]) -> None:
        """In one transaction: drop what `replace` keys had, insert `rows`."""
        table = self.table

        def run() -> None:
            with self.engine.begin() as conn:
                if replace:
                    conn.execute(table.delete().where(table.c.key.in_(replace)))
                conn.execute(table.insert(), rows)

        self._call(run)

    def _put_large(self, key: str, source: Path) -> None:
        table = self.table

        def drop() -> None:
            with self.engine.begin() as conn:
                conn.execute(table.delete().where(table.c.key == key))

        self._call(drop)  # the marker goes first: the key is incomplete from here on
        parts = 0
        size = 0
        with open(source, "rb") as handle:
            while True:
                rows = []
                for _ in range(_CHUNKS_PER_TRANSACTION):
                    chunk = handle.read(self.chunk_size)
                    if not chunk:
                        break
                    rows.append({"key": key, "part": parts, "data": chunk})
                    parts += 1
                    size += len(chunk)
                if not rows:
                    break
                self._write_rows([], rows)
        self._write_rows([], [self._marker(key, parts, size)])

    def try_lease(self, name: str, token: str, ttl_ms: int) -> bool:
        import sqlalchemy as sa

        self.prepare(write=True)
        table = self.table
        row = self._lease_row_filter(name)

        def run() -> bool:
            with self.engine.begin() as conn:
                current = self._lease_held(conn, row)
                if current is not None:
                    if _lease_expiry(current) > time.time():
                        return False
                    gone = conn.execute(table.delete().where(row, table.c.data == current))
                    if gone.rowcount != 1:
                        return False  # another clone replaced it first
                conn.execute(table.insert(), [_lease_row(name, token, ttl_ms)])
                return True

        try:
            return self._call(run)
        except sa.exc.IntegrityError:
            return False  # inserted by another clone meanwhile

    def renew_lease(self, name: str, token: str, ttl_ms: int) -> bool:
        return self._swap_lease(name, token, _lease_row(name, token, ttl_ms)["data"])

    def release_lease(self, name: str, token: str) -> None:
        self._swap_lease(name, token, None)

    def _lease_row_filter(self, name: str) -> Any:
        """The WHERE clause of lease `name`'s row."""
        return (self.table.c.key == name) & (self.table.c.part == _LEASE_PART)

    def _lease_held(self, conn: Any, row: Any) -> Any:
        """The data of the lease row `row` selects (token and expiry), or None."""
        return conn.execute(
            self.table.select().with_only_columns(self.table.c.data).where(row)
        ).scalar()

    def _swap_lease(self, name: str, token: str, data: bytes | None) -> bool:
        """Replace (or with None delete) the lease row if `token` holds it."""
        table = self.table
        row = self._lease_row_filter(name)

        def run() -> bool:
            with self.engine.begin() as conn:
                current = self._lease_held(conn, row)
                if current is None or bytes(current).split(b":")[0] != token.encode():
                    return False
                mine = row & (table.c.data == current)
                if data is None:
                    done = conn.execute(table.delete().where(mine))
                else:
                    done = conn.execute(table.update().where(mine).values(data=data))
                return bool(done.rowcount == 1)

        return self._call(run)

    def delete(self, keys: Sequence[str]) -> None:
        """Every row of each key (marker included) in one transaction per batch."""
        table = self.table
        for start in range(0, len(keys), _IN_BATCH):
            batch = list(keys[start : start + _IN_BATCH])

            def run(batch: list[str] = batch) -> None:
                with self.engine.begin() as conn:
                    conn.execute(table.delete().where(table.c.key.in_(batch)))

            self._call(run)

    def sizes(self, keys: Sequence[str]) -> dict[str, int]:
        table = self.table
        found: dict[str, int] = {}
        for start in range(0, len(keys), _IN_BATCH):
            query = (
                table.select()
                .with_only_columns(table.c.key, table.c.data)
                .where(table.c.part == -1, table.c.key.in_(list(keys[start : start + _IN_BATCH])))
            )

            def markers(query: Any = query) -> dict[str, int]:
                with self.engine.connect() as conn:
                    return {
                        row[0]: int(orjson.loads(bytes(row[1]))["size"])
                        for row in conn.execute(query)
                    }

            found.update(self._call(markers))
        return found

    def list(self, prefix: str) -> Iterator[str]:
        table = self.table
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = (
            table.select()
            .with_only_columns(table.c.key)
            .where(table.c.part == -1, table.c.key.like(escaped + "%", escape="\\"))
        )
        yield from self._query_column(query)

    def close(self) -> None:
        engine = self.__dict__.pop("engine", None)
        if engine is not None:
            engine.dispose()


def _lease_row(name: str, token: str, ttl_ms: int) -> dict[str, Any]:
    expiry = time.time() + ttl_ms / 1000
    return {"key": name, "part": _LEASE_PART, "data": f"{token}:{expiry!r}".encode()}


def _lease_expiry(data: bytes) -> float:
    try:
        return float(bytes(data).split(b":")[1])
    except (IndexError, ValueError):
        return 0.0  # unreadable: treat as expired


def _relative_sqlite_file(url: str) -> Path | None:
    """The absolute path a relative `sqlite:///x.db` URL opens, or None for other URLs."""
    scheme, sep, rest = url.partition(":///")
    path = rest.split("?")[0]
    if not sep or not scheme.startswith("sqlite") or path in ("", ":memory:"):
        return None
    return None if path.startswith("/") else Path(path).resolve()
