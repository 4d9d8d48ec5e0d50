"""Remote benchmarks (issue 5): `merkl push`/`pull` vs `dvc push`/`pull`, same data, one run.

Data: 1,000 files of 100 KB (one tracked directory) plus one 500 MB file. Each tool pushes
everything to an empty remote, then its local cache and work-tree copies are deleted and it
pulls everything back (fetch + checkout). Two kinds of remote:

1. a directory on the same disk;
2. S3 served by moto's server on loopback (dvc through `dvc[s3]`, merkl through boto3).

Every figure is a whole command in a fresh process (start-up included), the median of three
rounds (each to an empty remote, the first tool alternating). DVC uses
`cache.type symlink` (merkl's default link, and DVC's faster setting on ext4). Target: merkl
>= 2x faster than DVC for push and for pull, on both kinds of remote.

For S3 it also prints how many requests moto served per command and the CPU moto spent on them
(moto runs in this process, single-threaded under the GIL): on moto the cost is per request and
per byte stored, so the request counts explain the times.

A third part (`--signing-only` runs it alone, with merkl only) measures what signed output
records cost: 2,000 cached task outputs pushed to an empty directory remote and pulled into a
fresh clone, with no signing key and no trust list, then signed by the pusher's key and checked
against `[trust] keys` by the puller. Target: signing and checking add < 5%.

Run: `.venv-bench/bin/python benchmarks/bench_remotes.py [--small]
[--directory-only|--s3-only|--signing-only]` (`make bench` runs all). `--small` uses 100 files
and a 50 MB file, for a quick check.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent
MERKL = [str(BIN / "merkl")]
DVC = [str(BIN / "dvc")]
SMALL = "--small" in sys.argv
N_FILES = 100 if SMALL else 1000
FILE_SIZE = 100_000
BIG_SIZE = (50 if SMALL else 500) * 1_000_000
RUNS = 3
ENV = {
    **os.environ,
    "CI": "1",
    "DVC_NO_ANALYTICS": "1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}
ENV.pop("AWS_ENDPOINT_URL", None)


def sh(args: list[str], cwd: Path) -> float:
    """Run a command; return its wall time in seconds (it must succeed).

    Dirty pages are flushed first, so one tool's writes are not paid for by the next one.
    """
    os.sync()
    start = time.perf_counter()
    proc = subprocess.run(
        args, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}: {proc.stderr.decode()[-3000:]}")
    return elapsed


def make_data(folder: Path) -> None:
    data = folder / "data"
    data.mkdir(parents=True)
    for i in range(N_FILES):
        (data / f"f{i:04d}.bin").write_bytes(os.urandom(FILE_SIZE))
    with open(folder / "big.bin", "wb") as handle:
        for _ in range(BIG_SIZE // 10_000_000):
            handle.write(os.urandom(10_000_000))


def clear_data(folder: Path) -> None:
    shutil.rmtree(folder / "data", ignore_errors=True)
    (folder / "big.bin").unlink(missing_ok=True)


def merkl_project(folder: Path, source: Path, remote_args: list[str]) -> Path:
    folder.mkdir()
    sh(["git", "init", "-q"], folder)
    sh([*MERKL, "init"], folder)
    shutil.copytree(source / "data", folder / "data")
    shutil.copy(source / "big.bin", folder / "big.bin")
    sh([*MERKL, "track", "data", "big.bin"], folder)
    sh([*MERKL, "remote", "add", "bench", *remote_args, "--default"], folder)
    return folder


def dvc_project(folder: Path, source: Path, url: str, endpoint: str | None) -> Path:
    folder.mkdir()
    sh(["git", "init", "-q"], folder)
    sh([*DVC, "init", "-q"], folder)
    sh([*DVC, "config", "core.autostage", "false"], folder)
    sh([*DVC, "config", "cache.type", "symlink"], folder)
    shutil.copytree(source / "data", folder / "data")
    shutil.copy(source / "big.bin", folder / "big.bin")
    sh([*DVC, "add", "-q", "data", "big.bin"], folder)
    sh([*DVC, "remote", "add", "-d", "bench", url], folder)
    if endpoint:
        sh([*DVC, "remote", "modify", "bench", "endpointurl", endpoint], folder)
    return folder


class MotoMeter:
    """Requests served by the in-process moto server, and this process's CPU time (= moto's)."""

    def __init__(self) -> None:
        from moto.moto_server import werkzeug_app

        self.requests = 0
        lock = threading.Lock()
        serve = werkzeug_app.DomainDispatcherApplication.__call__

        def counting(app, environ, start_response):  # type: ignore[no-untyped-def]
            with lock:
                self.requests += 1
            return serve(app, environ, start_response)

        werkzeug_app.DomainDispatcherApplication.__call__ = counting  # type: ignore[method-assign]
        self.seen: dict[str, list[tuple[int, float]]] = {}

    def reading(self) -> tuple[int, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return self.requests, usage.ru_utime + usage.ru_stime

    def record(self, what: str, before: tuple[int, float]) -> None:
        after = self.reading()
        self.seen.setdefault(what, []).append((after[0] - before[0], after[1] - before[1]))

    def report(self, kind: str) -> None:
        for what, runs in self.seen.items():
            requests = statistics.median(r for r, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(f"{kind:<10} {what}: {requests:5.0f} requests, moto CPU {cpu:5.2f}s")


METER: MotoMeter | None = None


def measure(project: Path, tool: list[str], cache: Path) -> tuple[float, float]:
    """(push seconds, pull seconds into an empty cache and work tree)."""
    before = METER.reading() if METER else (0, 0.0)
    push = sh([*tool, "push"], project)
    if METER:
        METER.record(f"{Path(tool[0]).name} push", before)
    shutil.rmtree(cache)
    clear_data(project)
    before = METER.reading() if METER else (0, 0.0)
    pull = sh([*tool, "pull"], project)
    if METER:
        METER.record(f"{Path(tool[0]).name} pull", before)
    if not (project / "big.bin").exists() or len(os.listdir(project / "data")) != N_FILES:
        raise SystemExit(f"{tool[0]} pull did not restore the data in {project}")
    return push, pull


def compare(
    kind: str,
    merkl: tuple[Path, Callable[[int], None]],
    dvc: tuple[Path, Callable[[int], None]],
) -> None:
    """Median of RUNS rounds; each round points both tools at an empty remote, and the tool
    that goes first alternates (the machine may be shared: medians, not single runs)."""
    timings: dict[str, list[tuple[float, float]]] = {"merkl": [], "dvc": []}
    tools = {
        "merkl": (MERKL, merkl, ".merkl/objects"),
        "dvc": (DVC, dvc, ".dvc/cache"),
    }
    for run in range(RUNS):
        order = ["merkl", "dvc"] if run % 2 == 0 else ["dvc", "merkl"]
        for name in order:
            command, (project, fresh_remote), cache = tools[name]
            fresh_remote(run)
            timings[name].append(measure(project, command, project / cache))
    m = tuple(statistics.median(t[i] for t in timings["merkl"]) for i in (0, 1))
    d = tuple(statistics.median(t[i] for t in timings["dvc"]) for i in (0, 1))
    report(kind, (m[0], m[1]), (d[0], d[1]))
    for i, label in enumerate(("push", "pull")):
        pairs = zip(timings["merkl"], timings["dvc"], strict=True)
        ratios = [theirs[i] / ours[i] for ours, theirs in pairs]
        print(f"{kind:<10} {label} ratio per round: " + ", ".join(f"{r:.2f}x" for r in ratios))


def report(kind: str, merkl: tuple[float, float], dvc: tuple[float, float]) -> None:
    for label, ours, theirs in (("push", merkl[0], dvc[0]), ("pull", merkl[1], dvc[1])):
        print(
            f"{kind:<10} {label}: merkl {ours:6.2f}s  dvc {theirs:6.2f}s  "
            f"ratio dvc/merkl = {theirs / ours:5.2f}x"
        )
    total = (dvc[0] + dvc[1]) / (merkl[0] + merkl[1])
    print(f"{kind:<10} push+pull: ratio dvc/merkl = {total:5.2f}x")


def bench_directory(work: Path, source: Path) -> None:
    merkl = merkl_project(work / "m-dir", source, [str(work / "m-remote")])
    dvc = dvc_project(work / "d-dir", source, str(work / "d-remote"), None)

    def empty(remote: Path) -> Callable[[int], None]:
        return lambda run: shutil.rmtree(remote, ignore_errors=True)

    compare("directory", (merkl, empty(work / "m-remote")), (dvc, empty(work / "d-remote")))


def bench_s3(work: Path, source: Path) -> None:
    global METER
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    METER = MotoMeter()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        ).create_bucket(Bucket="bench")
        merkl = merkl_project(
            work / "m-s3", source, ["s3://bench/merkl", f"endpoint_url={endpoint}"]
        )
        dvc = dvc_project(work / "d-s3", source, "s3://bench/dvc", endpoint)

        def merkl_prefix(run: int) -> None:  # a new, empty prefix for each round
            sh(
                [
                    *MERKL,
                    "remote",
                    "add",
                    "bench",
                    f"s3://bench/merkl{run}",
                    f"endpoint_url={endpoint}",
                    "--default",
                ],
                merkl,
            )

        def dvc_prefix(run: int) -> None:
            sh([*DVC, "remote", "modify", "bench", "url", f"s3://bench/dvc{run}"], dvc)

        compare("s3 (moto)", (merkl, merkl_prefix), (dvc, dvc_prefix))
        METER.report("s3 (moto)")
    finally:
        server.stop()


N_OUTPUTS = 2000
SIGNING_RUNS = 10
OUTPUTS_MODULE = """
from merkl import task


@task
def item(i: int) -> dict:
    return {"i": i, "payload": "x" * 200}


def pipeline(n: int):
    return [item(i) for i in range(n)]
"""


def bench_signing(work: Path) -> None:
    """Push and pull of N_OUTPUTS output records, unsigned vs signed and checked.

    Wall times on a shared machine swing by tens of percent from round to round, so it also
    reports the CPU time (user + system) of each command, which the load disturbs far less.
    """
    root = work / "signing"
    root.mkdir()
    key = root / "key.pem"
    source = root / "source"
    source.mkdir()
    sh([*MERKL, "init"], source)
    (source / "outs.py").write_text(OUTPUTS_MODULE)
    sh([*MERKL, "run", "outs.pipeline", str(N_OUTPUTS)], source)
    signed_env = {**ENV, "MERKL_SIGNING_KEY": str(key)}
    subprocess.run([*MERKL, "key", "generate"], env=signed_env, check=True, capture_output=True)
    public = subprocess.run(
        [*MERKL, "key", "show"], env=signed_env, check=True, capture_output=True, text=True
    ).stdout.strip()
    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    for run in range(SIGNING_RUNS):
        for signed in (run % 2 == 0, run % 2 == 1):  # alternate which mode goes first
            mode = "signed" if signed else "unsigned"
            remote = root / f"remote-{run}-{mode}"
            clone = root / f"clone-{run}-{mode}"
            env = signed_env if signed else {**ENV, "MERKL_SIGNING_KEY": str(root / "none")}
            sh(
                [*MERKL, "remote", "add", "r", str(remote), "--default", "--local", "--force"],
                source,
            )
            clone.mkdir()
            sh([*MERKL, "init"], clone)
            sh([*MERKL, "remote", "add", "r", str(remote), "--default"], clone)
            if signed:
                sh([*MERKL, "trust", "add", public], clone)
            for step, folder in (("push", source), ("pull", clone)):
                seconds, cpu_seconds = timed([*MERKL, step], folder, env)
                wall.setdefault((mode, step), []).append(seconds)
                cpu.setdefault((mode, step), []).append(cpu_seconds)
            shutil.rmtree(remote)
            shutil.rmtree(clone)
    print(
        f"signed output records: {N_OUTPUTS} outputs, directory remote, median of {SIGNING_RUNS}"
    )
    for step in ("push", "pull"):
        parts = []
        for name, table in (("wall", wall), ("cpu", cpu)):
            plain = statistics.median(table[("unsigned", step)])
            signed_time = statistics.median(table[("signed", step)])
            change = 100 * (signed_time / plain - 1)
            parts.append(f"{name} {plain:.3f} -> {signed_time:.3f} s ({change:+.1f}%)")
        print(f"  {step}: unsigned -> signed: {'; '.join(parts)}")
    signing_work(root)


def signing_work(root: Path) -> None:
    """What signing and checking themselves cost, in this process: the figures the whole
    commands above hide in their noise. Best of 5 rounds."""
    import importlib

    from merkl.cache.index import OutputEntry
    from merkl.remotes import open_remote
    from merkl.remotes.signing import TrustedKeys, generate_signer, load_signer, sign_records
    from merkl.remotes.trust import RecordPolicy

    start = time.perf_counter()
    importlib.import_module("cryptography.hazmat.primitives.asymmetric.ed25519")
    imported = time.perf_counter() - start
    key = root / "micro.pem"
    signer = generate_signer(key)
    entries = [OutputEntry(f"{i:064x}", "bb" * 32, "json", 215, True) for i in range(N_OUTPUTS)]
    remote = open_remote(str(root / "micro-remote"), name="micro")
    records, manifests = sign_records(entries, signer)
    remote.push_outputs(records, manifests=manifests)
    found, _invalid = remote.fetch_outputs([e.out_hash for e in entries], root / "tmp")
    loads, signs, checks = [], [], []
    for _ in range(5):
        start = time.perf_counter()
        load_signer(key)
        loads.append(time.perf_counter() - start)
        start = time.perf_counter()
        sign_records(entries, signer)
        signs.append(time.perf_counter() - start)
        policy = RecordPolicy(TrustedKeys([signer.public]), trust_pickle=False)
        start = time.perf_counter()
        assert len(policy.signed(found.values(), remote, root / "tmp")) == N_OUTPUTS
        checks.append(time.perf_counter() - start)
    remote.close()
    print(
        f"  in-process, {N_OUTPUTS} records: import cryptography {imported * 1000:.0f} ms "
        f"(first use), load key {min(loads) * 1000:.1f} ms, sign {min(signs) * 1000:.1f} ms, "
        f"check (manifests fetched and re-hashed) {min(checks) * 1000:.1f} ms"
    )


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one command, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}: {proc.stderr.decode()[-3000:]}")
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, used


def main() -> None:
    if "--signing-only" in sys.argv:
        with tempfile.TemporaryDirectory(prefix="merkl-bench-signing-") as tmp:
            bench_signing(Path(tmp))
        return
    print(
        f"remotes: {N_FILES} files of {FILE_SIZE // 1000} KB + one "
        f"{BIG_SIZE // 1_000_000} MB file; push, then pull into an empty cache"
    )
    with tempfile.TemporaryDirectory(prefix="merkl-bench-remotes-") as tmp:
        work = Path(tmp)
        source = work / "source"
        make_data(source)
        if "--s3-only" not in sys.argv:
            bench_directory(work, source)
        if "--directory-only" not in sys.argv:
            bench_s3(work, source)
        if "--s3-only" not in sys.argv and "--directory-only" not in sys.argv:
            bench_signing(work)


if __name__ == "__main__":
    main()
