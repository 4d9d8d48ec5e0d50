"""Cache-lifecycle benchmarks (issue 17).

1. Local: evicting 100,000 cached outputs (`merkl cache clear --task` / `[cache] max_size`
   path, `merkl.ops.evict.evict`) and `merkl gc --keep-days 0` of 100,000 outputs (target:
   under 10 s).
2. Last-use bookkeeping per cache hit: `Cache.find` of a hit with the `used` set against the
   same lookups with the bookkeeping taken out (target: within 10 %), and the batched flush.
3. `gc --remote` of a directory remote holding N dead and N live objects.

Run: `.venv/bin/python benchmarks/bench_cache_lifecycle.py [N]` (default 100000).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from merkl.cache.facade import Cache, CachePolicy
from merkl.cache.index import OutputEntry, RunRecord
from merkl.repo import Repo


def fill(repo: Repo, count: int, task: str = "t") -> list[OutputEntry]:
    entries = []
    for i in range(count):
        data = b'"%d"' % i
        oid = repo.store.put_bytes(data)
        entries.append(OutputEntry(os.urandom(32).hex(), oid, "json", len(data), True))
    runs = [
        RunRecord(e.out_hash, 0, task, "m", "c", "a", {}, [], 0.0, e.size, time.time())
        for e in entries
    ]
    repo.index.add_outputs(entries, runs)
    return entries


def timed(label: str, work) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    work()
    elapsed = time.perf_counter() - start
    print(f"{label}: {elapsed:.2f} s", flush=True)
    return elapsed


def bench_local(count: int) -> None:
    from merkl.ops.evict import evict
    from merkl.ops.gc import gc

    with tempfile.TemporaryDirectory() as folder:
        repo = Repo.init(Path(folder) / "a")
        timed(f"setup: {count} outputs", lambda: fill(repo, count))
        out_hashes = {e.out_hash for e in repo.index.iter_outputs()}
        timed(f"evict {count} outputs", lambda: evict(repo, only=out_hashes))
    with tempfile.TemporaryDirectory() as folder:
        repo = Repo.init(Path(folder) / "b")
        fill(repo, count)
        timed(f"merkl gc --keep-days 0 of {count} outputs", lambda: gc(repo, keep_days=0))


def bench_hits(count: int = 200_000) -> None:
    with tempfile.TemporaryDirectory() as folder:
        repo = Repo.init(Path(folder) / "c")
        entries = fill(repo, 1000)
        cache = Cache(repo.store, repo.index)
        hashes = [entries[i % 1000].out_hash for i in range(count)]
        for h in hashes[:1000]:
            cache.find(h, CachePolicy.EVERYWHERE)

        def lookups() -> None:
            for h in hashes:
                cache.find(h, CachePolicy.EVERYWHERE)

        class NoBook(set):  # type: ignore[type-arg]
            add = staticmethod(len)  # a C call as cheap as can be: the baseline without the set

        rounds = []
        for _ in range(5):
            cache.used = set()
            with_book = _clock(lookups)
            cache.used = NoBook()
            without = _clock(lookups)
            rounds.append((with_book, without))
        best_with = min(r[0] for r in rounds) / count * 1e9
        best_without = min(r[1] for r in rounds) / count * 1e9
        print(
            f"Cache.find hit: {best_with:.0f} ns with last-use bookkeeping, "
            f"{best_without:.0f} ns without ({(best_with / best_without - 1) * 100:+.1f} %)"
        )
        load = _clock(lambda: [cache.load(e.out_hash, e) for e in entries]) / 1000 * 1e9
        print(f"Cache.load of a small JSON output (the rest of a hit): {load:.0f} ns")
        cache.used = {e.out_hash for e in entries}
        timed("flush of 1000 last uses", cache.flush_use)


HIT_TASKS = """
from merkl import task

@task
def square(i):
    return i * i
"""


def bench_get_hits(count: int = 2_000, repeat: int = 41) -> None:
    """A whole `.get()` of a cached output, in a repository with `[cache] max_size` set and in
    one without (both warm; `repeat` interleaved rounds, the best of each): what limits cost."""
    import importlib

    from merkl.session import Session, use_session

    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "bench_hit_tasks.py").write_text(HIT_TASKS)
        sys.path.insert(0, folder)
        tasks = importlib.import_module("bench_hit_tasks")
        repos = {}
        for name, config in (
            ("without limits", ""),
            ("with max_size", '[cache]\nmax_size = "10GB"\n'),
        ):
            root = Path(folder) / name.replace(" ", "-")
            Repo.init(root)
            (root / "merkl.toml").write_text(config)
            repos[name] = Repo(root)
        outputs = [tasks.square(i) for i in range(100)]
        for repo in repos.values():
            with use_session(Session(repo)):
                for out in outputs:
                    out.get()

        def hits(repo: Repo) -> float:
            with use_session(Session(repo)):
                start = time.perf_counter()
                for i in range(count):
                    outputs[i % 100].get()
                return time.perf_counter() - start

        rounds: dict[str, list[float]] = {name: [] for name in repos}
        order = list(repos.items())
        for _ in range(repeat):  # short interleaved rounds: the best of each is least disturbed
            order.reverse()  # each goes first half of the time
            for name, repo in order:
                rounds[name].append(hits(repo))
        best = {name: min(times) / count * 1e6 for name, times in rounds.items()}
        base, limited = best["without limits"], best["with max_size"]
        print(
            f".get() of a cached output: {limited:.1f} us with [cache] max_size, {base:.1f} us "
            f"without ({(limited / base - 1) * 100:+.1f} %)"
        )
        sys.path.remove(folder)


def _clock(work) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def bench_remote(count: int) -> None:
    from merkl.remotes import open_remote
    from merkl.remotes.collect import collect_remote
    from merkl.remotes.roots import publish_root

    with tempfile.TemporaryDirectory() as folder:
        repo = Repo.init(Path(folder) / "r")
        oids = [repo.store.put_bytes(b"object %d" % i) for i in range(2 * count)]
        remote = open_remote(str(Path(folder) / "remote"), name="r")
        timed(f"push {2 * count} objects (directory)", lambda: remote.push(repo.store, oids))
        publish_root(remote, "bench", "main", oids[:count], [])
        start = time.perf_counter()
        result = collect_remote(remote, grace=0)
        elapsed = time.perf_counter() - start
        print(
            f"gc --remote (directory): deleted {len(result.deleted)} of {2 * count}: "
            f"{elapsed:.2f} s"
        )


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    bench_hits()
    bench_get_hits()
    bench_local(n)
    bench_remote(n // 5)
