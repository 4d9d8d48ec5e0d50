"""`merkl run --worker-remote`: a hand-started Dask cluster whose workers store outputs on an
S3 (moto) remote themselves.

`dask scheduler` and two `dask worker` processes run with their own working directory and
HOME, the pipeline code on their PYTHONPATH and the S3 credentials in their own environment;
the driver is a separate `merkl run` process whose peak RSS is measured.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from merkl.repo import Repo
from tests.helpers import write_module

pytestmark = pytest.mark.slow

# 16 MiB keeps the test light; MERKL_TEST_SHARD_MIB=64 runs the full-size scenario.
SHARD_MIB = int(os.environ.get("MERKL_TEST_SHARD_MIB", "16"))
N_SHARDS = 4

PIPELINE = f"""
    import hashlib
    import os
    from pathlib import Path

    from merkl import task
    from merkl.serializers import BytesSerializer

    def _log(name):
        with open(os.environ["MERKL_TEST_CALLS"], "a") as handle:
            handle.write(name + "\\n")

    @task(serializers=BytesSerializer())
    def shard(i: int) -> bytes:
        _log("shard")
        return bytes([i]) * ({SHARD_MIB} << 20)

    @task
    def checksum(data: bytes) -> str:
        _log("checksum")
        return hashlib.sha256(data).hexdigest()[:16]

    @task
    def combine(sums: list) -> dict:
        if Path(os.environ["MERKL_TEST_CRASH"]).exists():
            os.kill(os.getpid(), 9)  # the worker is lost mid-run
        _log("combine")
        return {{"n": len(sums), "sums": sums}}

    def pipeline(n: int = {N_SHARDS}):
        return combine([checksum(shard(i)) for i in range(n)])
"""

# Run the CLI in a child process and report its own peak RSS (KiB) on the last stderr line.
DRIVER = (
    "import resource, sys\n"
    "from merkl.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


@dataclass
class Cluster:
    address: str
    env: dict[str, str]  # the S3 credentials and endpoint, as users export them
    calls: Path
    crash: Path
    workers: list[subprocess.Popen[bytes]]
    homes: list[Path]


def _expected(n: int = N_SHARDS) -> dict[str, object]:
    import hashlib

    sums = [hashlib.sha256(bytes([i]) * (SHARD_MIB << 20)).hexdigest()[:16] for i in range(n)]
    return {"n": n, "sums": sums}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("cluster")
    code = base / "code"  # the pipeline as deployed on the workers
    code.mkdir()
    write_module(code, "shards", PIPELINE)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "MERKL_TEST_CALLS": str(base / "calls.log"),
        "MERKL_TEST_CRASH": str(base / "crash"),
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
    }
    dask_cli = str(Path(sys.executable).with_name("dask"))
    scheduler_file = base / "scheduler.json"
    processes: list[subprocess.Popen[bytes]] = []
    homes = []

    def start(name: str, *args: str, pythonpath: str | None = None) -> None:
        home = base / name
        (home / "work").mkdir(parents=True)
        homes.append(home)
        own = {**env, "HOME": str(home), "PYTHONPATH": pythonpath or ""}
        with (home / "log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [dask_cli, *args], cwd=home / "work", env=own, stdout=log, stderr=log
                )
            )

    start(
        "scheduler",
        "scheduler",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--no-dashboard",
        "--scheduler-file",
        str(scheduler_file),
    )
    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    for n in (1, 2):
        start(
            f"worker{n}",
            "worker",
            address,
            "--nthreads",
            "1",
            "--no-dashboard",
            "--memory-limit",
            "0",
            pythonpath=str(code),
        )
    try:
        _wait_for_workers(address, 2)
        yield Cluster(address, env, base / "calls.log", base / "crash", processes, homes[1:])
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_workers(address: str, n: int) -> None:
    from distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(n, timeout=60)


@pytest.fixture
def bucket(cluster: Cluster) -> Iterator[str]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=cluster.env["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    name = f"merkl-workers-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    yield name
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)


def _project(folder: Path, bucket: str, cluster: Cluster) -> Path:
    folder.mkdir()
    write_module(folder, "shards", PIPELINE)
    assert _merkl(folder, cluster, "init")[0] == 0
    code, _, err = _merkl(folder, cluster, "remote", "add", "store", f"s3://{bucket}/cache")
    assert code == 0, err
    return folder


def _merkl(folder: Path, cluster: Cluster, *argv: str) -> tuple[int, str, str]:
    env = {**cluster.env, "HOME": str(folder / ".home"), "PYTHONPATH": str(folder)}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, *argv],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _peak_mib(err: str) -> float:
    line = [x for x in err.splitlines() if x.startswith("PEAK_RSS_KIB")][-1]
    return int(line.split()[1]) / 1024


def _ran(cluster: Cluster) -> list[str]:
    names = cluster.calls.read_text().split() if cluster.calls.exists() else []
    cluster.calls.unlink(missing_ok=True)
    return names


def _result(out: str) -> dict[str, object]:
    import ast

    value = ast.literal_eval(out.strip().splitlines()[-1])
    assert isinstance(value, dict)
    return value


def test_workers_store_outputs_on_the_remote_and_the_driver_stays_small(
    tmp_path: Path, cluster: Cluster, bucket: str
) -> None:
    project = _project(tmp_path / "project", bucket, cluster)
    _ran(cluster)
    run = ("run", "--scheduler", cluster.address, "shards.pipeline")
    code, out, err = _merkl(project, cluster, *run, "--worker-remote", "store")
    assert code == 0, err
    assert _result(out) == _expected()
    assert sorted(_ran(cluster)) == ["checksum"] * 4 + ["combine"] + ["shard"] * 4
    assert "unsigned output records" in err  # the workers have no signing key
    remote_peak = _peak_mib(err)

    # The driver indexed every output but holds only the small result's object.
    repo = Repo(project)
    entries = list(repo.index.iter_outputs())
    assert len(entries) == 9
    big = [e for e in entries if e.size >= SHARD_MIB << 20]
    assert len(big) == N_SHARDS
    assert not any(repo.store.has(e.oid) for e in big)

    # The same run with values sent back to the driver (fresh hashes: 5 shards).
    code, out, err = _merkl(project, cluster, *run, "5")
    assert code == 0, err
    driver_peak = _peak_mib(err)
    print(
        f"driver peak RSS: {remote_peak:.0f} MiB with --worker-remote, {driver_peak:.0f} "
        f"MiB without ({N_SHARDS} x {SHARD_MIB} MiB shards)"
    )
    assert remote_peak < driver_peak - 2 * SHARD_MIB

    # A fresh clone pulls what the run needs and runs nothing.
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("merkl.toml", "shards.py"):
        shutil.copy(project / name, clone / name)
    assert _merkl(clone, cluster, "init")[0] == 0
    _ran(cluster)
    code, out, err = _merkl(clone, cluster, "run", "--pull", "shards.pipeline")
    assert code == 0, err
    assert _result(out) == _expected()
    assert "0 task(s) run" in err
    assert _ran(cluster) == []

    for home in cluster.homes:  # the workers kept nothing of merkl's in their own places
        assert not (home / "work" / ".merkl").exists()


def test_a_lost_worker_fails_naming_the_task_and_a_rerun_resumes_from_the_remote(
    tmp_path: Path, cluster: Cluster, bucket: str
) -> None:
    project = _project(tmp_path / "project", bucket, cluster)
    _ran(cluster)
    run = ("run", "--scheduler", cluster.address, "--worker-remote", "store", "shards.pipeline")
    cluster.crash.touch()
    try:
        code, _, err = _merkl(project, cluster, *run, "3")
    finally:
        cluster.crash.unlink()
    assert code == 1
    assert "Dask lost the workers running task shards.combine" in err
    # (Dask may recompute a result the lost worker held; the remote makes that harmless.)
    assert set(_ran(cluster)) == {"checksum", "shard"}
    _wait_for_workers(cluster.address, 2)  # the nanny restarts the lost worker

    code, out, err = _merkl(project, cluster, *run, "3")
    assert code == 0, err
    assert _result(out) == _expected(3)
    assert _ran(cluster) == ["combine"]
    assert "1 task(s) run" in err
