"""Cache-lifecycle benchmarks (issue 17).

1. Local: evicting 100,000 cached outputs (`merkl cache clear --task` / `[cache] max_size`
   path, `merkl.ops.evict.evict`) and `merkl gc --keep-days 0` of 100,000 outputs (target:
   under 10 s).
2. Last-use bookkeeping per cache hit: `Cache.find` of a hit with the `used` set against the
   same lookups with the bookkeeping taken out (target: within 10 %), and the batched flush.
3. `gc --remote` of a directory remote holding N dead and N live objects.
4. `merkl gc --remote` (a real process) of an S3 remote on moto holding N objects, half of them
   dead (every pack repacked): time and the requests moto served, dry run and real.
5. `merkl gc --remote` against `dvc gc --workspace --cloud --force` on the same folder of N/10
   files (`BENCH_DVC_N`), half of them deleted, on one moto server: time and requests.

Run: `.venv-bench/bin/python benchmarks/bench_cache_lifecycle.py [N] [--s3-only] [--no-dvc]`
(default N = 100000; parts 4-5 need moto, and DVC from `.venv-bench`).
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


class Moto:
    """A moto S3 server in this process, counting the requests it serves."""

    def __init__(self) -> None:
        import logging

        import boto3
        from bench_remotes import ENV, MotoMeter
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.meter = MotoMeter()
        os.environ.update(ENV)  # credentials, CI=1, no DVC analytics, git identity
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint
        self.client = boto3.client("s3", endpoint_url=self.endpoint)

    def bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        return name

    def run(self, args: list[str], cwd: Path) -> tuple[float, int, str]:
        """(seconds, requests served, stdout) of a command, which must succeed."""
        import subprocess

        before = self.meter.requests
        start = time.perf_counter()
        done = subprocess.run(args, cwd=cwd, env=os.environ, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed: {done.stderr[-2000:]}")
        return elapsed, self.meter.requests - before, done.stdout


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def bench_remote_s3(moto: Moto, count: int, rounds: int = 3) -> None:
    """`merkl gc --remote` (a real process) of an S3 remote holding `count` objects of 1 KB,
    half of them dead and spread over every pack, so every pack is repacked (the worst case)."""
    from merkl.remotes import open_remote
    from merkl.remotes.roots import publish_root

    for round_ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            repo = Repo.init(Path(folder) / "r")
            bucket = moto.bucket(f"gc{round_}")
            (repo.root / "merkl.toml").write_text(
                f'[remotes.r]\nurl = "s3://{bucket}/p"\n', encoding="utf-8"
            )
            oids = [
                repo.store.put_bytes(b"%09d" % i + os.urandom(991), sync=False)
                for i in range(count)
            ]
            remote = open_remote(f"s3://{bucket}/p", name="r")
            start = time.perf_counter()
            remote.push(repo.store, oids)
            pushed = time.perf_counter() - start
            publish_root(remote, "bench", "main", oids[::2], [])
            remote.close()
            dry = moto.run(
                [_bin("merkl"), "gc", "--remote", "r", "--grace", "0", "--dry-run"], repo.root
            )
            real = moto.run(
                [_bin("merkl"), "gc", "--remote", "r", "--grace", "0", "--yes"], repo.root
            )
            print(
                f"S3 (moto) {count} objects (pushed in {pushed:.1f} s), {count // 2} dead: "
                f"gc --remote --dry-run {dry[0]:.2f} s, {dry[1]} requests; "
                f"gc --remote {real[0]:.2f} s, {real[1]} requests",
                flush=True,
            )
            print("   ", real[2].strip().splitlines()[-1][:200], flush=True)


def bench_gc_vs_dvc(moto: Moto, count: int) -> None:
    """The same data through both CLIs: a folder of `count` files of 1 KB tracked and pushed,
    half of them deleted, tracked and pushed again; then `merkl gc --remote` against
    `dvc gc --workspace --cloud --force`, each on its own prefix of one moto server."""
    import shutil
    import subprocess

    bucket = moto.bucket("versus")
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "source"
        source.mkdir()
        for i in range(count):
            (source / f"f{i:06d}.bin").write_bytes(b"%09d" % i + os.urandom(991))
        tools = {
            "merkl": [
                [_bin("merkl"), "init"],
                [_bin("merkl"), "remote", "add", "r", f"s3://{bucket}/merkl", "--default"],
            ],
            "dvc": [
                [_bin("dvc"), "init", "-q"],
                [_bin("dvc"), "config", "core.autostage", "false"],
                [_bin("dvc"), "remote", "add", "-d", "r", f"s3://{bucket}/dvc"],
                [_bin("dvc"), "remote", "modify", "r", "endpointurl", moto.endpoint],
            ],
        }
        track = {
            "merkl": [_bin("merkl"), "track", "data"],
            "dvc": [_bin("dvc"), "add", "-q", "data"],
        }
        gc = {
            "merkl": [_bin("merkl"), "gc", "--remote", "r", "--grace", "0", "--yes"],
            "dvc": [_bin("dvc"), "gc", "--workspace", "--cloud", "--force"],
        }
        results = {}
        for tool, setup in tools.items():
            project = Path(folder) / tool
            project.mkdir()
            subprocess.run(["git", "init", "-q"], cwd=project, check=True)
            for args in setup:
                moto.run(args, project)
            shutil.copytree(source, project / "data")
            moto.run(track[tool], project)
            moto.run([_bin(tool), "push"], project)
            for path in sorted((project / "data").iterdir())[::2]:
                path.unlink()
            moto.run(track[tool], project)
            moto.run([_bin(tool), "push"], project)
            results[tool] = moto.run(gc[tool], project)
        m, d = results["merkl"], results["dvc"]
        print(
            f"gc of an S3 (moto) remote, {count} files then {count // 2} deleted: "
            f"merkl {m[0]:.2f} s / {m[1]} requests, dvc {d[0]:.2f} s / {d[1]} requests; "
            f"ratio dvc/merkl = {d[0] / m[0]:.1f}x time, {d[1] / max(m[1], 1):.1f}x requests",
            flush=True,
        )


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 100_000
    if "--s3-only" not in sys.argv:
        bench_hits()
        bench_get_hits()
        bench_local(n)
        bench_remote(n // 5)
    moto = Moto()
    bench_remote_s3(moto, n)
    if "--no-dvc" not in sys.argv:
        bench_gc_vs_dvc(moto, int(os.environ.get("BENCH_DVC_N", str(n // 10))))
