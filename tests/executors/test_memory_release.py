"""A run holds its live frontier, not every value it computed (issue 18).

Peak memory is measured as the peak RSS of a fresh process evaluating a chain of tasks, each
returning 1 MiB: before values were released, 200 links peaked ~180 MiB above 20 links (on Dask,
the driver: also ~180 MiB).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from merkl.evaluation import evaluate
from merkl.executors.base import ValueMap
from merkl.executors.dependencies import CallDependencies
from merkl.graph import make_plan
from merkl.repo import Repo
from tests.helpers import import_fresh, write_module

CHAIN = """
from merkl import task
from merkl.serializers import BytesSerializer

MIB = 1 << 20


@task(serializers=BytesSerializer())
def grow(previous, i):
    return bytes([i % 256]) * MIB


def chain(n):
    value = None
    for i in range(n):
        value = grow(value, i)
    return value
"""

# A file, not `-c`: Dask's worker processes re-import the main module.
MEASURE = """
import resource, sys
sys.path.insert(0, ".")
import chain_tasks
from merkl.evaluation import evaluate

if __name__ == "__main__":
    n, executor = int(sys.argv[1]), sys.argv[2]
    value = evaluate([chain_tasks.chain(n)], executor=None if executor == "none" else executor)
    assert value[0] == bytes([(n - 1) % 256]) * chain_tasks.MIB
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def _peak_mib(folder: Path, links: int, executor: str) -> int:
    """Peak RSS of this process alone (Dask workers are other processes: the driver's)."""
    (folder / "measure_chain.py").write_text(MEASURE)
    out = subprocess.run(
        [sys.executable, "measure_chain.py", str(links), executor],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.split()[-1])


@pytest.mark.parametrize("executor", ["none", "threads", "dask"])
def test_a_long_chain_peaks_like_a_short_one(repo: Repo, executor: str) -> None:
    write_module(repo.root, "chain_tasks", CHAIN)
    short = _peak_mib(repo.root, 20, executor)
    long = _peak_mib(repo.root, 200, executor)
    assert long - short <= 60, f"20 links peak at {short} MiB, 200 links at {long} MiB"


SHARED = """
from merkl import task


@task
def make(n):
    return list(range(n))


@task(outs=2)
def split(values):
    return values[:1], values[1:]


@task
def total(*parts):
    return sum(sum(part) for part in parts)
"""


def test_values_the_caller_asked_for_are_kept_and_readers_get_theirs(repo: Repo) -> None:
    write_module(repo.root, "shared_tasks", SHARED)
    tasks = import_fresh(repo.root, "shared_tasks")
    base = tasks.make(5)
    head, rest = tasks.split(base)
    twin = tasks.make(5)  # the same call again: runs once, both placeholders get the value
    top = tasks.total(head, rest, twin)
    assert evaluate([top, base, rest]) == [20, [0, 1, 2, 3, 4], [1, 2, 3, 4]]


def test_a_value_is_dropped_once_its_last_reader_has_started(repo: Repo) -> None:
    write_module(repo.root, "drop_tasks", SHARED)
    tasks = import_fresh(repo.root, "drop_tasks")
    base = tasks.make(3)
    head, rest = tasks.split(base)
    top = tasks.total(head, base)
    plan = make_plan([top], None)
    dependencies = CallDependencies(plan)
    values = ValueMap(lambda node: None, keep=[top])
    values.expect(dependencies.calls)
    make_call, split_call, total_call = dependencies.calls
    dependencies.set_values(values, make_call, [[0, 1, 2]])
    values.started(split_call)
    assert base in values  # `total` still reads it
    dependencies.set_values(values, split_call, [[0], [1, 2]])
    assert head in values
    assert rest not in values
    values.started(total_call)
    assert base not in values
    assert head not in values
    dependencies.set_values(values, total_call, [3])
    assert values == {top: 3}
