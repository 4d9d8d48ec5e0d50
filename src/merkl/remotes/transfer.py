"""The transfer engine: run batches of per-object work on a bounded thread pool.

A failing object is recorded in `TransferResult.failed` and the others go on (as dvc-data's
`transfer` does); a `RemoteError` (unreachable remote, bad credentials, missing bucket) or running
out of file descriptors aborts at once, because every other object would fail the same way.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from merkl.errors import RemoteError, TransferError
from merkl.units import human_size

_Item = TypeVar("_Item")
_MAX_LISTED = 5


@dataclass
class TransferResult:
    """What a push or pull did: keys moved, keys that failed (with the reason), keys skipped."""

    transferred: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: int = 0  # already on the other side
    nbytes: int = 0
    seconds: float = 0.0

    def merge(self, other: TransferResult) -> TransferResult:
        self.transferred += other.transferred
        self.failed.update(other.failed)
        self.skipped += other.skipped
        self.nbytes += other.nbytes
        self.seconds += other.seconds
        return self

    def summary(self, verb: str, where: str) -> str:
        """E.g. `pushed 12 object(s), 3.1 MB in 0.42s to 'origin' (5 already there)`."""
        line = (
            f"{verb} {len(self.transferred)} object(s), {human_size(self.nbytes)} in "
            f"{self.seconds:.2f}s {where}"
        )
        extras = []
        if self.skipped:
            extras.append(f"{self.skipped} already there")
        if self.failed:
            extras.append(f"{len(self.failed)} failed")
        return line + (f" ({', '.join(extras)})" if extras else "")

    def raise_for_failures(self, verb: str, where: str) -> None:
        """Raise one `TransferError` listing the first failures, if there were any."""
        if not self.failed:
            return
        shown = list(self.failed.items())[:_MAX_LISTED]
        details = "; ".join(f"{key_label(key)}: {reason}" for key, reason in shown)
        more = len(self.failed) - len(shown)
        raise TransferError(
            f"{verb} {where}: {len(self.failed)} object(s) failed — {details}"
            + (f"; and {more} more" if more > 0 else "")
            + f"; the other {len(self.transferred)} succeeded, run the command again to retry",
            failed=dict(self.failed),
        )


@dataclass(frozen=True)
class Batch(Generic[_Item]):
    items: Sequence[_Item]
    nbytes: int


def make_batches(
    items: Sequence[_Item], sizes: Sequence[int], max_items: int, max_bytes: int
) -> list[Batch[_Item]]:
    """Group items (in order) into batches of at most `max_items` and about `max_bytes`."""
    batches: list[Batch[_Item]] = []
    current: list[_Item] = []
    current_bytes = 0
    for item, size in zip(items, sizes, strict=True):
        if current and (len(current) >= max_items or current_bytes + size > max_bytes):
            batches.append(Batch(current, current_bytes))
            current, current_bytes = [], 0
        current.append(item)
        current_bytes += size
    if current:
        batches.append(Batch(current, current_bytes))
    return batches


def run_batches(
    batches: Sequence[Batch[_Item]],
    work: Callable[[Sequence[_Item]], dict[str, str]],
    key_of: Callable[[_Item], str],
    jobs: int,
    on_done: Callable[[int], None] = lambda count: None,
) -> tuple[list[str], dict[str, str]]:
    """Run `work` on every batch with at most `jobs` threads.

    `work(items)` returns {key: reason} for the items that failed. A batch that raises is
    retried item by item so one bad object does not fail its neighbours. Returns the keys that
    succeeded and the failures.
    """
    done: list[str] = []
    failed: dict[str, str] = {}

    def run_one(batch: Batch[_Item]) -> dict[str, str]:
        try:
            return work(batch.items)
        except RemoteError:
            raise
        except Exception as exc:
            _abort_if_fatal(exc)
            if len(batch.items) == 1:
                return {key_of(batch.items[0]): describe(exc)}
        errors: dict[str, str] = {}
        for item in batch.items:
            try:
                errors.update(work([item]))
            except RemoteError:
                raise
            except Exception as exc:
                _abort_if_fatal(exc)
                errors[key_of(item)] = describe(exc)
        return errors

    if not batches:
        return done, failed
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(batches)))) as pool:
        futures: dict[Future[dict[str, str]], Batch[_Item]] = {
            pool.submit(run_one, batch): batch for batch in batches
        }
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    batch = futures[future]
                    errors = future.result()  # re-raises a fatal error
                    failed.update(errors)
                    ok = [key_of(i) for i in batch.items if key_of(i) not in errors]
                    done += ok
                    on_done(len(batch.items))
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return done, failed


def _abort_if_fatal(exc: Exception) -> None:
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        raise RemoteError(
            f"too many open files ({exc}); lower --jobs or raise the limit with `ulimit -n`"
        ) from exc


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


def key_label(key: str) -> str:
    """`objects/ab/cdef…` → `object abcdef012345`; `outputs/…` → `output …`."""
    kind, _, rest = key.partition("/")
    digest = rest.replace("/", "")
    noun = {"objects": "object", "outputs": "output"}.get(kind, kind)
    return f"{noun} {digest[:12]}" if digest else key


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
