"""The `--worker-remote` Dask job run in this process: what it writes to the remote (object,
record, signed or not), what it returns, and how a dependent reads its input back."""

from __future__ import annotations

from pathlib import Path

import pytest

from merkl.cache.facade import StoredElsewhere
from merkl.errors import CacheMissError, UsageError
from merkl.executors import worker_remote
from merkl.executors.worker import CallSpec, DepSlot, task_ref
from merkl.executors.worker_remote import RemoteSpec, remote_spec, run_call_to_remote
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


def _spec(task, args, label="t") -> CallSpec:
    return CallSpec(task_ref(task), 1, args, {}, label)


def _record(spec: RemoteSpec, out_hash: str, tmp_path: Path):
    remote = open_remote(spec.url)
    temp = tmp_path / "record"
    remote.get([(record_key(out_hash), temp)])
    return load_record(temp.read_bytes(), out_hash, remote.label)


def test_outputs_go_to_the_remote_and_only_entries_come_back(module, spec, tmp_path):
    out_hash = "a" * 64
    outputs, _, signed = run_call_to_remote(_spec(module.make, [1000]), spec, (out_hash,))
    (stored,) = outputs
    assert isinstance(stored, StoredElsewhere)
    assert stored.entry.size >= 1000
    assert stored.entry.pushable
    assert open_remote(spec.url).has([object_key(stored.entry.oid)])
    record = _record(spec, out_hash, tmp_path)
    assert record.entry.oid == stored.entry.oid
    assert not signed
    assert record.key is None

    # A dependent (on any worker) reads its input back from the remote.
    slot = DepSlot(0, 0)
    outputs, _, _ = run_call_to_remote(
        _spec(module.size, [slot]), spec, ("b" * 64,), (outputs, 0.0, signed)
    )
    assert isinstance(outputs[0], StoredElsewhere)
    assert _record(spec, "b" * 64, tmp_path).entry.size == len(b"1000")


def test_a_worker_with_a_key_signs_its_records(module, spec, tmp_path, monkeypatch):
    signer = generate_signer(tmp_path / "worker-key.pem")
    monkeypatch.setenv("MERKL_SIGNING_KEY", str(tmp_path / "worker-key.pem"))
    _, _, signed = run_call_to_remote(_spec(module.make, [10]), spec, ("c" * 64,))
    assert signed
    assert _record(spec, "c" * 64, tmp_path).key == signer.public.text


def test_outputs_kept_off_remotes_come_back_as_values(module, spec):
    outputs, _, _ = run_call_to_remote(_spec(module.private, [21]), spec, ("d" * 64,))
    assert outputs == (42,)
    assert not list(open_remote(spec.url).list("outputs/"))


def test_an_input_missing_from_the_remote_names_it(module, spec, tmp_path):
    outputs, _, _ = run_call_to_remote(_spec(module.make, [10]), spec, ("e" * 64,))
    entry = outputs[0].entry
    (Path(spec.url) / object_key(entry.oid)).unlink()
    with pytest.raises(CacheMissError, match=r"input eeeeeeeeeeee .* is missing or corrupt"):
        run_call_to_remote(_spec(module.size, [DepSlot(0, None)]), spec, ("f" * 64,), outputs[0])


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
