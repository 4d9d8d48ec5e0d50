"""`--worker-remote` runs in chunks: one Dask task runs many merkl calls.

A Dask task costs a few milliseconds of scheduling, far more than a small task body, so a run
with a worker remote groups its calls: by level (a call's level is one more than its producers'
highest, so the calls of a level never read one another) and, within a level, into chunks of
at most `MAX_CHUNK` calls, and at least `CHUNKS_PER_THREAD` chunks per worker thread where the
level has that many calls (so long tasks still spread over the cluster).

Each chunk is one Dask task (`run_chunk_to_remote`) that takes the futures of the chunks it
reads from. Its output stays in the worker's memory: the values later chunks read, by output
hash, which Dask moves to the worker that needs them, and the entries of what it stored on the
remote. A second, tiny task on the same worker (`chunk_results`) picks out the entries: only
those reach the driver, which indexes them and logs the runs as they arrive.
"""

from __future__ import annotations

from merkl.executors.dependencies import CallDependencies
from merkl.tasks import Call

MAX_CHUNK = 1000  # calls per Dask task at most
CHUNKS_PER_THREAD = 4  # chunks per worker thread at least, where a level has the calls


def chunk_calls(dependencies: CallDependencies, threads: int) -> list[list[Call]]:
    """The calls to run in chunks, each made of calls of one level, producers' chunks first."""
    levels: list[list[Call]] = []
    level: dict[Call, int] = {}
    for call in dependencies.calls:  # producers come first
        depth = max((level[p] + 1 for p in dependencies.producers[call]), default=0)
        level[call] = depth
        if depth == len(levels):
            levels.append([])
        levels[depth].append(call)
    chunks: list[list[Call]] = []
    for calls in levels:
        size = max(1, min(MAX_CHUNK, len(calls) // (CHUNKS_PER_THREAD * max(threads, 1))))
        chunks.extend(calls[i : i + size] for i in range(0, len(calls), size))
    return chunks
