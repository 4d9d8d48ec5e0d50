"""Hostile repositories and remotes against tracking: no path escapes, no followed symlinks,
no pickle loaded from bytes this machine did not compute.

The attacker controls what a clone brings (pointer files, committed files and symlinks,
`.gitignore`) and what a remote serves (objects, directory manifests). Every test checks that
nothing outside the repository changed and that the refusal is one clean line.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import orjson
import pytest

import merkl
from merkl.errors import MerklError, PointerFileError
from merkl.pointer import Pointer, dump_pointer, parse_pointer
from merkl.session import use_session
from tests.helpers import run_cli


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the repo standing for the user's home: nothing may change in it."""
    folder = tmp_path / "home"
    (folder / ".ssh").mkdir(parents=True)
    (folder / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA user@host\n")
    (folder / "secret.txt").write_text("the user's secret\n")
    return folder


def _clean_error(result) -> None:
    assert result.code == 1, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("merkl: error: "), result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "../../home/.ssh/authorized_keys",
        "/etc/passwd",
        "a/../../x",
        "C:\\x",
        "\\\\srv\\x",
        "a/../..",
        "",
    ],
)
def test_pointer_paths_escaping_the_repo_are_refused(path):
    data = orjson.loads(dump_pointer(Pointer("a" * 64, 1, "ok.csv")))
    data["path"] = path
    with pytest.raises(PointerFileError, match="path"):
        parse_pointer(orjson.dumps(data), Path("x.merkl"))


def _store_manifest(repo, files: list[list[object]]) -> str:
    """Put a directory manifest into the store, as `merkl pull` from a hostile remote would."""
    raw = orjson.dumps({"files": files, "format": 1, "hash": "blake3"})
    return repo.store.put_bytes(raw)


@pytest.mark.parametrize("member", ["../../home/secret.txt", "/abs/file", "a/../../../x", ".."])
def test_manifest_member_paths_escaping_the_directory_are_refused(repo, outside, member):
    payload = repo.store.put_bytes(b"attacker's bytes\n")
    manifest_oid = _store_manifest(repo, [[member, payload, 17]])
    (repo.root / "data.merkl").write_bytes(
        dump_pointer(Pointer(manifest_oid, 17, "data", type="dir", files=1))
    )
    before = _snapshot(outside)
    for command in (["checkout"], ["status"], ["checkout", "--force"]):
        _clean_error(run_cli(*command))
    assert _snapshot(outside) == before
    assert not (repo.root / "data").exists()


def test_checkout_does_not_follow_a_committed_symlinked_folder(repo, outside):
    """A clone brings `data/sub -> ~/.ssh` and a manifest listing `sub/authorized_keys`."""
    payload = repo.store.put_bytes(b"ssh-ed25519 ATTACKER attacker@evil\n")
    manifest_oid = _store_manifest(repo, [["sub/authorized_keys", payload, 36]])
    (repo.root / "data").mkdir()
    (repo.root / "data" / "sub").symlink_to(outside / ".ssh")
    (repo.root / "data.merkl").write_bytes(
        dump_pointer(Pointer(manifest_oid, 36, "data", type="dir", files=1))
    )
    before = _snapshot(outside)
    result = run_cli("checkout", "--force")
    assert result.code == 1
    assert "symlink" in result.err
    assert "Traceback" not in result.err
    assert _snapshot(outside) == before


def test_symlinked_data_path_is_not_written_through(repo, outside):
    """`model.bin -> ~/secret.txt` committed beside `model.bin.merkl`: checkout --force must
    replace the link, never write into its target."""
    payload = repo.store.put_bytes(b"new model\n")
    (repo.root / "model.bin").symlink_to(outside / "secret.txt")
    (repo.root / "model.bin.merkl").write_bytes(dump_pointer(Pointer(payload, 10, "model.bin")))
    before = _snapshot(outside)
    result = run_cli("checkout", "--force")
    assert result.code in (0, 1), result.err
    assert "Traceback" not in result.err
    assert _snapshot(outside) == before
    if result.code == 0:
        assert (repo.root / "model.bin").read_bytes() == b"new model\n"


def test_track_does_not_follow_symlinks_out_of_a_directory(repo, outside):
    data = repo.root / "data"
    (data / "inner").mkdir(parents=True)
    (data / "inner" / "a.csv").write_text("1,2\n")
    (data / "keys").symlink_to(outside / ".ssh" / "authorized_keys")
    (data / "home").symlink_to(outside)
    (data / "ok-link").symlink_to("inner/a.csv")  # inside the folder: followed
    result = run_cli("track", "data")
    assert result.code == 0, result.err
    stored = b"".join(repo.store.get_bytes(o) for o in repo.store.iter_oids())
    assert b"ssh-ed25519" not in stored
    assert b"secret" not in stored
    pointer = merkl.pointer.read_pointer(repo.root / "data.merkl")
    assert pointer.files == 2  # inner/a.csv and ok-link
    assert (outside / ".ssh" / "authorized_keys").read_text().startswith("ssh-ed25519 AAAA")


def test_tracking_outside_the_repo_or_inside_merkl_is_refused(repo, outside):
    for target in (str(outside / "secret.txt"), "../home/secret.txt", ".merkl/index.sqlite"):
        _clean_error(run_cli("track", target))
    assert (outside / "secret.txt").read_text() == "the user's secret\n"


def _evil_pickle(marker: Path) -> bytes:
    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "pwned"))

    return pickle.dumps(Payload())


def test_load_never_unpickles_bytes_it_did_not_compute(repo, tmp_path):
    """A clone brings `result.pkl` and a pointer saying "serializer": "pickle"."""
    marker = tmp_path / "pwned"
    evil = _evil_pickle(marker)
    (repo.root / "result.pkl").write_bytes(evil)
    oid = merkl.hashing.hash_bytes(evil)
    (repo.root / "result.pkl.merkl").write_bytes(
        dump_pointer(Pointer(oid, len(evil), "result.pkl", output="b" * 64, serializer="pickle"))
    )
    for where in ("work tree", "store"):  # the data file, then the object a pull fetched
        if where == "store":
            repo.store.put_bytes(evil)
            (repo.root / "result.pkl").unlink()
        with pytest.raises(MerklError, match="pickle"):
            merkl.load(repo.root / "result.pkl").get()
        assert not marker.exists()
    with use_session(trust_pickle=True):  # the documented opt-in still works
        merkl.load(repo.root / "result.pkl").get()
    assert marker.read_text() == "pwned"


def test_pointer_that_is_a_device_or_fifo_is_refused_quickly(repo):
    (repo.root / "zero.bin.merkl").symlink_to("/dev/zero")
    os.mkfifo(repo.root / "pipe.bin.merkl")
    for command in ("status", "checkout", "verify"):
        result = run_cli(command)
        assert result.code == 1, (command, result.err)
        assert "Traceback" not in result.err, (command, result.err)
        assert "not a regular file" in result.out + result.err
