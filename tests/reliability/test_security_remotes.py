"""Hostile remotes and secrets: pickles from a remote are never loaded by default, tampered
objects are refused, and passwords never reach output, errors or logs."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import pytest

from merkl.repo import Repo
from merkl.session import Session, use_session
from tests.helpers import import_fresh, run_cli, write_module

PICKLE_PIPE = """
    import os
    from pathlib import Path
    from merkl import PickleSerializer, task

    class Payload:
        def __init__(self, marker):
            self.marker = marker

        def __reduce__(self):  # what an attacker's pickle does on load
            return (Path.write_text, (Path(self.marker), "pwned"))

    @task(serializers=PickleSerializer())
    def model(marker):
        # Same code everywhere; only the attacker's machine makes the harmful value.
        if os.environ.get("MERKL_TEST_ATTACKER"):
            return Payload(marker)
        return {"weights": [1, 2, 3]}

    def pipeline(marker: str):
        return model(marker)
"""


@pytest.fixture
def poisoned_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A directory remote holding a pickled output that runs code when loaded."""
    attacker = Repo.init(tmp_path / "attacker")
    write_module(attacker.root, "picklepipe", PICKLE_PIPE)
    remote_dir, marker = tmp_path / "remote", tmp_path / "pwned"
    os.chdir(attacker.root)
    assert run_cli("remote", "add", "origin", str(remote_dir), "--default").code == 0
    monkeypatch.setenv("MERKL_TEST_ATTACKER", "1")
    result = run_cli("run", "picklepipe.pipeline", str(marker))
    monkeypatch.delenv("MERKL_TEST_ATTACKER")
    assert result.code == 0, result.err
    pushed = run_cli("push")
    assert pushed.code == 0, pushed.err
    marker.unlink()  # the attacker's own run loaded it; the victim's must not
    return remote_dir, marker


def _victim(tmp_path: Path, remote_dir: Path, *options: str) -> Repo:
    victim = Repo.init(tmp_path / "victim")
    write_module(victim.root, "picklepipe", PICKLE_PIPE)
    sys.modules.pop("picklepipe", None)  # the attacker's copy was imported in this process
    os.chdir(victim.root)
    added = run_cli("remote", "add", "origin", str(remote_dir), "--default", *options)
    assert added.code == 0, added.err
    return victim


def test_pull_and_run_pull_never_unpickle_by_default(tmp_path, poisoned_remote):
    remote_dir, marker = poisoned_remote
    _victim(tmp_path, remote_dir)
    run_cli("pull")
    result = run_cli("run", "--pull", "picklepipe.pipeline", str(marker))
    assert not marker.exists(), "a pickle from the remote was loaded"
    assert "Traceback" not in result.err


def test_read_through_never_unpickles_by_default(tmp_path, poisoned_remote):
    remote_dir, marker = poisoned_remote
    victim = _victim(tmp_path, remote_dir, "read_through=true")
    pipe = import_fresh(victim.root, "picklepipe")
    with use_session(Session(victim)):
        value = pipe.model(str(marker)).get()
    assert value == {"weights": [1, 2, 3]}  # computed locally: the remote copy was not used
    assert not marker.exists(), "a pickle from the remote was loaded"


def test_trusting_the_remote_is_an_explicit_opt_in(tmp_path, poisoned_remote):
    """The control: with trust_pickle=true the same bytes do load (so the tests above can
    fail)."""
    remote_dir, marker = poisoned_remote
    _victim(tmp_path, remote_dir, "trust_pickle=true")
    assert run_cli("pull").code == 0
    result = run_cli("run", "picklepipe.pipeline", str(marker))
    assert result.code == 0, result.err
    assert "0 task(s) run" in result.err
    assert marker.read_text() == "pwned"


def test_tampered_remote_objects_are_refused(tmp_path):
    """Every object in a remote replaced by other bytes: pull stores none of them."""
    source = Repo.init(tmp_path / "source")
    os.chdir(source.root)
    (source.root / "data.bin").write_bytes(os.urandom(50_000))
    remote_dir = tmp_path / "remote"
    assert run_cli("remote", "add", "origin", str(remote_dir), "--default").code == 0
    assert run_cli("track", "data.bin").code == 0
    assert run_cli("push").code == 0, "push failed"
    objects = [p for p in remote_dir.rglob("*") if p.is_file() and p.stat().st_size >= 50_000]
    assert objects
    for obj in objects:
        os.chmod(obj, 0o644)
        obj.write_bytes(b"tampered" + obj.read_bytes()[8:])

    clone = Repo.init(tmp_path / "clone")
    shutil.copy(source.root / "data.bin.merkl", clone.root / "data.bin.merkl")
    os.chdir(clone.root)
    assert run_cli("remote", "add", "origin", str(remote_dir), "--default").code == 0
    result = run_cli("pull")
    assert result.code == 1
    assert "Traceback" not in result.err
    assert list(clone.store.iter_oids()) == []
    assert not (clone.root / "data.bin").exists()


SECRET = "Sup3r-S3cret-pw-8c1f"
ENCODED = "Pa%21ss-w0rd-5e1d%2Fq"  # as written into a URL: `!` and `/` escaped
DECODED = "Pa!ss-w0rd-5e1d/q"


@pytest.mark.parametrize("secret", [SECRET, ENCODED], ids=["plain", "percent-encoded"])
@pytest.mark.parametrize(
    "url",
    [
        "redis://:${MERKL_TEST_PW}@127.0.0.1:1/0",
        "postgresql+psycopg://merkl:${MERKL_TEST_PW}@127.0.0.1:1/db",
        "mysql+pymysql://merkl:${MERKL_TEST_PW}@127.0.0.1:1/db",
        "redis://127.0.0.1:1/0?password=${MERKL_TEST_PW}",
        "s3://bucket/prefix?secret=${MERKL_TEST_PW}",
    ],
    ids=["redis", "postgres", "mysql", "redis-query", "s3-query"],
)
def test_secrets_never_reach_output_errors_or_logs(repo, monkeypatch, caplog, url, secret):
    monkeypatch.setenv("MERKL_TEST_PW", secret)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    (repo.root / "data.bin").write_bytes(b"payload")
    outputs = [
        run_cli("remote", "add", "origin", url, "--default", "jobs=1"),
        run_cli("track", "data.bin"),
        run_cli("push"),
        run_cli("pull"),
        run_cli("remote", "list"),
        run_cli("status"),
    ]
    push = outputs[2]
    assert push.code == 1, (push.out, push.err)  # nothing listens on port 1
    text = "".join(r.out + r.err for r in outputs) + caplog.text
    assert SECRET not in text
    assert ENCODED not in text
    assert DECODED not in text  # the form a library prints after decoding the URL
    for result in outputs:
        assert "Traceback" not in result.err


def test_literal_password_in_committed_config_is_masked(repo):
    (repo.root / "merkl.toml").write_text(
        f'[remotes.origin]\nurl = "redis://:{SECRET}@127.0.0.1:1/0"\n'
    )
    results = [run_cli("remote", "list"), run_cli("push", "-r", "origin"), run_cli("pull")]
    assert results[1].code == 1
    assert SECRET not in "".join(r.out + r.err for r in results)
