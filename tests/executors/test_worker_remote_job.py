"""The `--worker-remote` Dask job (a chunk of calls) run in this process: what it writes to the
remote (object, record, signed or not), what it returns, and how a dependent reads its input
from an earlier chunk or back from the remote."""

from __future__ import annotations

from pathlib import Path

import pytest

from merkl.cache.facade import StoredElsewhere
from merkl.errors import CacheMissError, UsageError
from merkl.executors import worker_remote
from merkl.executors.worker import CallSpec, DepSlot, task_ref
from merkl.executors.worker_remote import (
    ChunkCall,
    ChunkOutput,
    RemoteSpec,
    UpstreamFailedError,
    chunk_results,
    remote_spec,
    run_chunk_to_remote,
)
from merkl.remotes import open_remote
from merkl.remotes.records import load_record, object_key, record_key
from merkl.remotes.signing import generate_signer
from tests.helpers import import_fresh, run_cli, write_module

MODULE = """
    from merkl import CachePolicy, task

    @task
    def make(n: int) -> bytes:
        return b"x" * n

    @task
    def size(data: bytes) -> int:
        return len(data)

    @task(cache_policy=CachePolicy.LOCAL)
    def private(n: int) -> int:
        return n * 2
"""

CLI_PIPELINE = """
@task
def one():
    return 1

def pipeline():
    return one()
"""


@pytest.fixture
def module(tmp_path: Path):
    write_module(tmp_path, "remote_job", MODULE)
    return import_fresh(tmp_path, "remote_job")


@pytest.fixture
def spec(tmp_path: Path) -> RemoteSpec:
    return RemoteSpec("shared", str(tmp_path / "remote"), ())


@pytest.fixture(autouse=True)
def fresh_worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No remote opened and no key loaded yet, as in a new worker process."""
    monkeypatch.setattr(worker_remote, "_remotes", {})
    monkeypatch.setattr(worker_remote, "_signer", [])
    monkeypatch.setenv("MERKL_SIGNING_KEY", str(tmp_path / "no-key.pem"))


def _call(task, args, out_hash: str, label="t") -> ChunkCall:
    return ChunkCall(CallSpec(task_ref(task), 1, args, {}, label), (out_hash,))


def _run(spec: RemoteSpec, *calls: ChunkCall, keep=(), deps=()) -> ChunkOutput:
    out = run_chunk_to_remote(list(calls), frozenset(keep), spec, *deps)
    if out.failure is not None:
        raise out.failure
    return out


def _record(spec: RemoteSpec, out_hash: str, tmp_path: Path):
    remote = open_remote(spec.url)
    temp = tmp_path / "record"
    remote.get([(record_key(out_hash), temp)])
    return load_record(temp.read_bytes(), out_hash, remote.label)


def test_outputs_go_to_the_remote_and_only_entries_come_back(module, spec, tmp_path):
    a, b = "a" * 64, "b" * 64
    out = _run(spec, _call(module.make, [1000], a), _call(module.make, [10], b), keep={a})
    results, signed, failure = chunk_results(out)
    assert failure is None
    assert not signed
    for (stored,), _ in results:
        assert isinstance(stored, StoredElsewhere)
        assert stored.entry.pushable
        assert open_remote(spec.url).has([object_key(stored.entry.oid)])
    entry = results[0][0][0].entry
    assert entry.size >= 1000
    record = _record(spec, a, tmp_path)
    assert record.entry.oid == entry.oid
    assert record.key is None
    # Only the value a later chunk reads stays in the worker's memory, as stored.
    assert out.values == {a: b"x" * 1000}

    # A dependent reads it from the chunk's output (Dask moves it to its worker) ...
    c = "c" * 64
    dependent = _run(spec, _call(module.size, [DepSlot(0, a)], c), deps=[out])
    assert _record(spec, c, tmp_path).entry.size == len(b"1000")
    assert isinstance(dependent.results[0][0][0], StoredElsewhere)
    # ... and an input the driver sends as an entry from the remote.
    d = "d" * 64
    _run(spec, _call(module.size, [DepSlot(0, None)], d), deps=[StoredElsewhere(entry)])
    assert _record(spec, d, tmp_path).entry.size == len(b"1000")


def test_a_worker_with_a_key_signs_its_records(module, spec, tmp_path, monkeypatch):
    signer = generate_signer(tmp_path / "worker-key.pem")
    monkeypatch.setenv("MERKL_SIGNING_KEY", str(tmp_path / "worker-key.pem"))
    assert _run(spec, _call(module.make, [10], "c" * 64)).signed
    assert _record(spec, "c" * 64, tmp_path).key == signer.public.text


def test_outputs_kept_off_remotes_come_back_as_values(module, spec):
    out = _run(spec, _call(module.private, [21], "d" * 64))
    assert out.results[0][0] == (42,)
    assert not list(open_remote(spec.url).list("outputs/"))


def test_an_input_missing_from_the_remote_names_it(module, spec, tmp_path):
    out = _run(spec, _call(module.make, [10], "e" * 64))
    entry = out.results[0][0][0].entry
    (Path(spec.url) / object_key(entry.oid)).unlink()
    with pytest.raises(CacheMissError, match=r"input eeeeeeeeeeee .* is missing or corrupt"):
        _run(spec, _call(module.size, [DepSlot(0, None)], "f" * 64), deps=[StoredElsewhere(entry)])


def test_a_failing_call_ends_its_chunk_and_what_finished_before_it_is_stored(module, spec):
    a, bad, after = "1" * 64, "2" * 64, "3" * 64
    calls = [
        _call(module.make, [5], a),
        _call(module.make, ["x"], bad),
        _call(module.make, [6], after),
    ]
    out = run_chunk_to_remote(calls, frozenset({a, bad, after}), spec)
    assert isinstance(out.failure, TypeError)
    assert any("in merkl task t" in note for note in out.failure.__notes__)
    assert len(out.results) == 1
    assert open_remote(spec.url).has([record_key(a)]) == {record_key(a)}
    # A dependent of the failed call lacks its input: not the cause, and it says so.
    dependent = run_chunk_to_remote(
        [_call(module.size, [DepSlot(0, bad)], "4" * 64, label="dep")], frozenset(), spec, out
    )
    assert isinstance(dependent.failure, UpstreamFailedError)
    assert "an input of task dep was not computed" in str(dependent.failure)


def test_an_unknown_worker_remote_is_one_line_before_any_cluster_starts(repo, tmp_path):
    write_module(repo.root, "unknown_remote", "from merkl import task\n\n" + CLI_PIPELINE)
    result = run_cli(
        "run", "--executor", "dask", "--worker-remote", "nope", "unknown_remote.pipeline"
    )
    assert result.code == 1
    assert result.err.startswith("merkl: error: no remote 'nope' in ")
    assert "Traceback" not in result.err


def test_a_tiered_worker_remote_is_refused(repo, tmp_path):
    assert run_cli("remote", "add", "fast", str(tmp_path / "fast")).code == 0
    assert run_cli("remote", "add", "both", "tiered:fast,fast").code == 0
    with pytest.raises(UsageError, match=r"--worker-remote 'both' is a tiered remote"):
        remote_spec(repo, "both")


def test_a_relative_directory_worker_remote_is_sent_as_an_absolute_path(repo):
    assert run_cli("remote", "add", "shared", "remote-dir").code == 0
    assert remote_spec(repo, "shared").url == str(repo.root / "remote-dir")


def test_an_index_written_before_worker_remotes_gains_the_remote_column(tmp_path):
    import sqlite3

    from merkl.cache.index import Index, OutputEntry

    path = tmp_path / "index.sqlite"
    with sqlite3.connect(path) as conn:  # the outputs table as earlier versions made it
        conn.execute(
            "CREATE TABLE outputs (out_hash TEXT PRIMARY KEY, oid TEXT NOT NULL, serializer "
            "TEXT NOT NULL, size INTEGER NOT NULL, pushable INTEGER NOT NULL DEFAULT 1, "
            "created REAL NOT NULL)"
        )
        conn.execute("INSERT INTO outputs VALUES ('a', 'o', 'json', 1, 1, 0)")
    index = Index(path)
    assert index.find_output("a") == OutputEntry("a", "o", "json", 1, True, None)
    index.add_outputs([OutputEntry("b", "p", "json", 2, True, "shared")])
    assert index.find_output("b") == OutputEntry("b", "p", "json", 2, True, "shared")
    assert {e.remote for e in index.iter_outputs()} == {None, "shared"}
