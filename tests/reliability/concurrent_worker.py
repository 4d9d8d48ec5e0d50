"""One process of the concurrency test: 8 threads evaluate overlapping DAGs in one repo.

    python -m tests.reliability.concurrent_worker REPO WORKER GO_FILE

Waits for GO_FILE (so all processes start together), runs the threads, checks every value
against a plain-Python computation, and prints one JSON line: {"ok": …, "errors": […]}.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from pathlib import Path

import orjson

THREADS = 8
WIDTH = 24  # leaves per DAG; neighbouring threads and processes share most of them

PIPELINE = """
import blake3
from merkl import BytesSerializer, task

@task
def leaf(i):
    return {"i": i, "square": i * i, "pad": "x" * 2000}

@task
def pair(a, b):
    return a["square"] + b["square"]

@task(serializers=BytesSerializer())
def blob(i):
    return blake3.blake3(str(i).encode()).digest(length=256 * 1024)

@task
def size_of(data):
    return len(data)

@task
def total(pairs, sizes):
    return sum(pairs) + sum(sizes)

def dag(start, width):
    leaves = [leaf(i) for i in range(start, start + width)]
    pairs = [pair(leaves[k], leaves[(k + 1) % width]) for k in range(width)]
    sizes = [size_of(blob(i % 10)) for i in range(start, start + width)]
    return total(pairs, sizes)
"""


def expected(start: int, width: int) -> int:
    squares = [i * i for i in range(start, start + width)]
    pairs = [squares[k] + squares[(k + 1) % width] for k in range(width)]
    return sum(pairs) + width * 256 * 1024


def dag_starts(worker: int) -> list[int]:
    """Each thread's DAG: offsets overlap between threads and between processes."""
    return [(worker * 3 + thread * 2) % 17 for thread in range(THREADS)]


def main() -> int:
    root, worker, go_file = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    sys.path.insert(0, str(root))
    import concpipe

    from merkl.evaluation import evaluate
    from merkl.repo import Repo
    from merkl.session import Session, use_session

    repo = Repo(root)  # shared by all threads, as `merkl serve` shares one
    errors: list[str] = []
    barrier = threading.Barrier(THREADS)

    def run(start: int) -> None:
        try:
            with use_session(Session(repo)):
                barrier.wait()
                for _ in range(2):  # the second round is served from the cache
                    value = evaluate([concpipe.dag(start, WIDTH)])[0]
                    if value != expected(start, WIDTH):
                        errors.append(
                            f"dag({start}) = {value!r}, expected {expected(start, WIDTH)!r}"
                        )
        except BaseException:
            errors.append(traceback.format_exc())

    while not go_file.exists():
        time.sleep(0.002)
    threads = [threading.Thread(target=run, args=(s,)) for s in dag_starts(worker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(orjson.dumps({"ok": not errors, "errors": errors[:5]}).decode())
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
