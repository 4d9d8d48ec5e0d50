"""`merkl run --pull`, read-through on `.get()`, pickle trust and tampered outputs, end to end
over a directory remote (the transfer itself is covered per backend by the contract)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from merkl.errors import MerklWarning
from merkl.remotes import open_remote
from merkl.remotes.records import object_key
from merkl.repo import Repo
from tests.helpers import run_cli, write_module

CHAIN = """
    import os
    from merkl import PickleSerializer, path, task

    def _log(name):
        with open(os.environ["MERKL_TEST_CALLS"], "a") as handle:
            handle.write(name + "\\n")

    @task
    def first(x):
        _log("first")
        return x + 1

    @task
    def second(y):
        _log("second")
        return y * 10

    @task
    def third(z, k):
        _log("third")
        return z + k

    @task(serializers={0: PickleSerializer()})
    def pickled(x):
        _log("pickled")
        return {"value": x}

    @task
    def model_size(model):
        _log("model_size")
        return os.path.getsize(model)

    def pipeline(x: int, k: int = 0):
        return third(second(first(x)), k)

    def pickle_pipeline(x: int):
        return pickled(x)

    def deploy(x: int, *, model: str):
        return third(second(first(x)), model_size(path(model)))

    def baked_in(x: int):
        return third(second(first(x)), model_size(path("model.bin")))
"""


@pytest.fixture
def calls(tmp_path, monkeypatch) -> Path:
    log = tmp_path / "calls.log"
    monkeypatch.setenv("MERKL_TEST_CALLS", str(log))
    return log


def ran(calls: Path) -> list[str]:
    names = calls.read_text().split() if calls.exists() else []
    calls.unlink(missing_ok=True)
    return names


def run(*args: str):
    sys.modules.pop("chain", None)  # the clone imports its own copy of the module
    return run_cli("run", *args)


@pytest.fixture
def origin(tmp_path, monkeypatch, calls) -> Path:
    """A project with a computed pipeline, pushed to a directory remote."""
    folder = tmp_path / "origin"
    folder.mkdir()
    monkeypatch.chdir(folder)
    assert run_cli("init").code == 0
    write_module(folder, "chain", CHAIN)
    (folder / "model.bin").write_bytes(b"m" * 5000)
    assert run_cli("track", "model.bin").code == 0
    assert run_cli("remote", "add", "origin", str(tmp_path / "remote"), "--default").code == 0
    return folder


def clone(origin: Path, monkeypatch) -> Repo:
    folder = origin.parent / "clone"
    folder.mkdir()
    for name in ("merkl.toml", "chain.py", "model.bin.merkl"):
        shutil.copy(origin / name, folder / name)
    monkeypatch.chdir(folder)
    assert run_cli("init").code == 0
    return Repo(folder)


def test_run_pull_fetches_only_the_top_of_the_dag(origin, monkeypatch, calls):
    assert run("chain.pipeline", "1").out.strip() == "20"
    assert run_cli("push").code == 0
    ran(calls)
    repo = clone(origin, monkeypatch)
    result = run("--pull", "chain.pipeline", "1")
    assert result.code == 0, result.err
    assert result.out.strip() == "20"
    assert "0 task(s) run" in result.err
    assert "pulled 1 object(s)" in result.err
    assert ran(calls) == []
    assert len(list(repo.index.iter_outputs())) == 1  # `third` only, not its upstream


def test_run_pull_fetches_upstream_where_something_must_run(origin, monkeypatch, calls):
    assert run("chain.pipeline", "1").code == 0
    assert run_cli("push").code == 0
    ran(calls)
    repo = clone(origin, monkeypatch)
    result = run("--pull", "chain.pipeline", "1", "5")  # `third` is new
    assert result.code == 0, result.err
    assert result.out.strip() == "25"
    assert ran(calls) == ["third"]
    assert len(list(repo.index.iter_outputs())) == 2  # `second` fetched, `first` not needed


def test_deploy_step_pulls_the_tracked_model(origin, monkeypatch, calls):
    """The seed's deploy: dry run with --pull fetches referenced files, computes nothing."""
    assert run("chain.deploy", "1", "--model", "model.bin").out.strip() == "5020"
    assert run_cli("push").code == 0
    ran(calls)
    repo = clone(origin, monkeypatch)
    assert not (repo.root / "model.bin").exists()
    result = run("--pull", "--dry", "--fill-missing", "chain.deploy", "--model", "model.bin")
    assert result.code == 0, result.err
    assert (repo.root / "model.bin").read_bytes() == b"m" * 5000
    assert ran(calls) == []
    assert "model_size" in result.out
    assert len(list(repo.index.iter_outputs())) == 1  # model_size: its hash needs no x
    full = run("--pull", "chain.deploy", "1", "--model", "model.bin")
    assert full.out.strip() == "5020"
    assert "0 task(s) run" in full.err


def test_pickled_outputs_need_consent(origin, monkeypatch, calls):
    assert run("chain.pickle_pipeline", "3").out.strip() == "{'value': 3}"
    assert run_cli("push").code == 0
    ran(calls)
    clone(origin, monkeypatch)
    pulled = run_cli("pull")
    assert pulled.code == 0, pulled.err
    assert "skipped 1 pickled output(s)" in pulled.out
    assert run("chain.pickle_pipeline", "3").out.strip() == "{'value': 3}"
    assert ran(calls) == ["pickled"]  # not loaded from the remote: computed here


def test_pickled_outputs_with_consent(origin, monkeypatch, calls):
    assert run("chain.pickle_pipeline", "3").code == 0
    assert run_cli("push").code == 0
    ran(calls)
    clone(origin, monkeypatch)
    pulled = run_cli("pull", "--trust-pickle")
    assert pulled.code == 0, pulled.err
    assert "skipped" not in pulled.out
    result = run("chain.pickle_pipeline", "3")
    assert result.out.strip() == "{'value': 3}"
    assert ran(calls) == []


def test_tampered_output_is_refused_and_recomputed(origin, monkeypatch, calls, tmp_path):
    assert run("chain.pipeline", "1", "1").out.strip() == "21"
    repo = Repo(origin)
    entries = list(repo.index.iter_outputs())
    assert run_cli("push").code == 0
    ran(calls)
    remote = open_remote(str(tmp_path / "remote"), name="origin")
    top = next(e for e in entries if repo.store.get_bytes(e.oid) == b"21")
    remote.put([(object_key(top.oid), b"666")])
    fresh = clone(origin, monkeypatch)
    pulled = run_cli("pull")
    assert pulled.code == 1
    assert f"object {top.oid[:12]}" in pulled.err
    assert "remote 'origin'" in pulled.err
    assert "do not match" in pulled.err
    assert fresh.index.find_output(top.out_hash) is None
    assert not fresh.store.has(top.oid)
    assert run("chain.pipeline", "1", "1").out.strip() == "21"
    assert ran(calls) == ["third"]


def test_read_through_on_get(origin, monkeypatch, calls):
    assert run("chain.pipeline", "1").code == 0
    assert run_cli("push").code == 0
    ran(calls)
    repo = clone(origin, monkeypatch)
    with (repo.root / "merkl.toml").open("a") as handle:
        handle.write("read_through = true\n")  # appended to [remotes.origin]
    sys.modules.pop("chain", None)
    sys.path.insert(0, str(repo.root))
    import chain

    assert chain.pipeline(1).get() == 20
    assert ran(calls) == []
    assert len(list(Repo(repo.root).index.iter_outputs())) == 1


def test_read_through_from_an_unreachable_remote_warns_and_computes(
    origin, monkeypatch, calls, tmp_path
):
    repo = clone(origin, monkeypatch)
    (repo.root / "merkl.toml").write_text(
        f'[remotes.gone]\nurl = "{tmp_path / "nowhere"}"\nread_through = true\n'
    )
    sys.path.insert(0, str(repo.root))
    sys.modules.pop("chain", None)
    import chain

    with pytest.warns(MerklWarning, match="read-through from remote 'gone' disabled"):
        assert chain.pipeline(1).get() == 20
    assert sorted(ran(calls)) == ["first", "second", "third"]


def test_run_pull_with_an_unusable_remote_changes_nothing(origin, monkeypatch, calls, tmp_path):
    repo = clone(origin, monkeypatch)
    shutil.rmtree(tmp_path / "remote", ignore_errors=True)
    result = run("--pull", "chain.pipeline", "1")
    assert result.code == 1
    assert result.err.strip().splitlines()[-1].startswith("merkl: error: remote 'origin'")
    assert ran(calls) == []
    assert list(repo.index.iter_outputs()) == []


def test_a_tracked_input_named_in_the_pipeline_body_needs_no_data_when_cached(
    origin, monkeypatch, calls
):
    """`merkl.path("model.bin")` inside the pipeline: in a fresh clone the pointer gives its
    hash, so the DAG is built and found on the remote without downloading the model."""
    assert run("chain.baked_in", "1").out.strip() == "5020"
    assert run_cli("push").code == 0
    ran(calls)
    repo = clone(origin, monkeypatch)
    result = run("--pull", "chain.baked_in", "1")
    assert result.code == 0, result.err
    assert result.out.strip() == "5020"
    assert ran(calls) == []
    assert not (repo.root / "model.bin").exists()  # not needed: nothing reads it


def test_run_pull_fetches_a_tracked_input_a_task_must_read(origin, monkeypatch, calls):
    assert run_cli("push", "model.bin").code == 0  # the data only, no cached outputs
    repo = clone(origin, monkeypatch)
    result = run("--pull", "chain.baked_in", "1")
    assert result.code == 0, result.err
    assert result.out.strip() == "5020"
    assert "model_size" in ran(calls)
    assert (repo.root / "model.bin").read_bytes() == b"m" * 5000
    assert "checked out 1 file(s)" in result.err


def test_a_tracked_input_without_its_data_is_a_clear_error(origin, monkeypatch, calls):
    clone(origin, monkeypatch)
    result = run("chain.baked_in", "1")
    assert result.code == 1
    assert "'model.bin' is tracked but not in the work tree" in result.err
    assert "merkl pull model.bin" in result.err
    assert "Traceback" not in result.err
