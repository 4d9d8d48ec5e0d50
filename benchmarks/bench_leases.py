"""What compute-once costs (issue 17): a cache hit, a computed trivial task, and the lease.

1. A cache hit: a new call + `.get()` of a trivial cached task (takes no lease).
2. A computed trivial task: a new call + `.get()` with new arguments each time (one lease each).
3. The lease alone: taking and dropping it plus the local re-check of the cache, on a miss.
4. The same as the pool and Dask executors' coordinator takes it (`RunLeases.claim` without
   waiting, `stored` after the store), the cost of making the call subtracted.

Run: `.venv/bin/python benchmarks/bench_leases.py` (no peers needed; best and median of 7
rounds).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable


def per_call_us(rounds: int, n: int, body: Callable[[int, int], None]) -> tuple[float, float]:
    """Best and median of `rounds` rounds of `n` calls of `body(round, i)`, in µs per call."""
    times = []
    for r in range(rounds):
        start = time.perf_counter()
        for i in range(n):
            body(r, i)
        times.append((time.perf_counter() - start) / n * 1e6)
    return min(times), statistics.median(times)


def main() -> None:
    from merkl.cache import CachePolicy
    from merkl.cache.lease import output_lease
    from merkl.repo import Repo
    from merkl.session import Session, use_session

    root = tempfile.mkdtemp(prefix="merkl-bench-leases-")
    subprocess.run(["git", "init", "-q", root], check=True)
    with open(os.path.join(root, "benchleases.py"), "w") as handle:
        handle.write("from merkl import task\n\n@task\ndef inc(x):\n    return x + 1\n")
    os.chdir(root)
    sys.path.insert(0, root)
    import benchleases

    repo = Repo.init(root)
    cache = repo.cache
    with use_session(Session(repo)):
        benchleases.inc(-1).get()
        hit = per_call_us(7, 300, lambda r, i: benchleases.inc(-1).get())
        computed = per_call_us(7, 300, lambda r, i: benchleases.inc(r * 1000 + i).get())

    def lease(r: int, i: int) -> None:
        out_hash = f"{r:04d}{i:060d}"
        with output_lease(repo.dot_dir, out_hash):
            cache.find(out_hash, CachePolicy.EVERYWHERE, "json", remote=False)

    leased = per_call_us(7, 2000, lease)
    rows = [
        ("cache hit (new call + .get())", hit),
        ("computed trivial task (new call + .get())", computed),
        ("lease + local re-check, per computed call", leased),
    ]
    try:
        from merkl.executors.leases import RunLeases
    except ImportError:  # a checkout from before the pools took leases
        pass
    else:
        leases = RunLeases(Session(repo))

        def claim(r: int, i: int) -> None:
            call = benchleases.inc(10_000_000 + r * 10_000 + i).call
            assert leases.claim(call) is True
            leases.stored(call)

        calls_only = per_call_us(7, 2000, lambda r, i: benchleases.inc(20_000_000 + i).call)
        claimed = per_call_us(7, 2000, claim)
        claim_only = (claimed[0] - calls_only[0], claimed[1] - calls_only[1])
        rows.append(("threads/processes/Dask: claim + settle, per computed call", claim_only))
    for what, (best, median) in rows:
        print(f"{what}: {best:.1f} µs best, {median:.1f} µs median")


if __name__ == "__main__":
    main()
