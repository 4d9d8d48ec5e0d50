"""4 processes x 8 threads evaluate overlapping DAGs in one repository at the same time.

All results are right, every output is computed once (the lease of issue 17) and stored once
(one row per hash, one object per oid, no leftovers), and no "database is locked" reaches
anyone.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading

import orjson

from merkl.evaluation import evaluate
from merkl.ops.verify import verify
from merkl.session import Session, use_session
from tests.helpers import REPO_ROOT, import_fresh, write_module
from tests.reliability import concurrent_worker as worker

PROCESSES = 4


def test_processes_and_threads_share_one_cache(repo, tmp_path):
    write_module(repo.root, "concpipe", worker.PIPELINE)
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(repo.root)]))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.concurrent_worker",
                str(repo.root),
                str(n),
                str(go),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    stop = threading.Event()
    verify_errors: list[object] = []
    verify_rounds = 0

    def verify_meanwhile() -> None:  # `merkl verify --repair` is safe during runs
        nonlocal verify_rounds
        while not stop.is_set():
            report = verify(repo, repair=True)
            verify_errors.extend(f for f in report.findings if f.is_error)
            verify_rounds += 1

    checker = threading.Thread(target=verify_meanwhile)
    checker.start()
    go.touch()
    try:
        results = [proc.communicate(timeout=300) for proc in procs]
    finally:
        stop.set()
        checker.join()
    assert verify_errors == []
    assert verify_rounds > 0
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, (out, err)
        assert orjson.loads(out.splitlines()[-1]) == {"ok": True, "errors": []}
        assert "locked" not in err, err
        assert "Traceback" not in err, err

    # Every output hash the DAGs contain has exactly one row, and one object behind it.
    pipe = import_fresh(repo.root, "concpipe")
    with use_session(Session(repo)):
        starts = {s for n in range(PROCESSES) for s in worker.dag_starts(n)}
        hashes = set()
        for start in starts:
            stack = [pipe.dag(start, worker.WIDTH)]
            while stack:
                node = stack.pop()
                if node.hash not in hashes:
                    hashes.add(node.hash)
                    stack.extend(node.call.deps)
        assert evaluate([pipe.dag(min(starts), worker.WIDTH)])[0] == worker.expected(
            min(starts), worker.WIDTH
        )
    with sqlite3.connect(repo.index.path) as conn:
        rows = conn.execute("SELECT out_hash, oid FROM outputs").fetchall()
        runs = conn.execute("SELECT out_hash, COUNT(*) FROM runs GROUP BY out_hash").fetchall()
    assert sorted(h for h, _ in rows) == sorted(hashes)
    oids = {oid for _, oid in rows}
    stored = [*repo.store.iter_oids(), *(oid for oid, _ in repo.store.iter_inline())]
    assert sorted(stored) == sorted(oids)
    report = verify(repo)
    assert report.findings == [], report.findings  # not even an orphan or a temp file
    duplicated = sum(count - 1 for _, count in runs)
    assert duplicated == 0  # the lease on each output hash: computed once (issue 17)
    print(
        f"\nconcurrency: {PROCESSES} processes x {worker.THREADS} threads, {len(hashes)} "
        f"outputs, {len(oids)} objects, {duplicated} duplicate computations, "
        f"{verify_rounds} concurrent verify --repair rounds"
    )
