"""`merkl checkout` and `checkout()`: restore from the store, never lose unsaved data."""

from __future__ import annotations

import os
import shutil
import subprocess

import orjson
import pytest
from tests.helpers import run_cli
from tests.tracking.conftest import set_link_type, snapshot

from merkl.errors import TrackingError
from merkl.hashing import hash_bytes
from merkl.ops.checkout import checkout
from merkl.pointer import Pointer, read_pointer, write_pointer
from merkl.repo import Repo


def test_restores_missing_files_and_directories(tree):
    root = tree({"a.bin": "A", "data": {"x": "X", "sub": {"y": "Y"}}})
    run_cli("track", "a.bin", "data")
    (root / "a.bin").unlink()
    shutil.rmtree(root / "data")
    result = run_cli("checkout")
    assert result.code == 0, result.err
    assert "3 restored, 0 removed, 0 unchanged" in result.out
    assert (root / "a.bin").read_text() == "A"
    assert (root / "data/sub/y").read_text() == "Y"
    assert (root / "a.bin").is_symlink()
    again = run_cli("checkout")
    assert "0 restored, 0 removed, 3 unchanged" in again.out


def test_after_git_checkout_of_an_older_pointer_the_old_data_comes_back(tree):
    """The work-tree file is the newer tracked version: it is in the store, so no --force."""
    root = tree({"m.bin": "v1"})
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    run_cli("track", "m.bin")
    v1_pointer = (root / "m.bin.merkl").read_bytes()
    (root / "m.bin").unlink()
    (root / "m.bin").write_text("v2")
    run_cli("track", "m.bin")
    (root / "m.bin.merkl").write_bytes(v1_pointer)  # what `git checkout HEAD~1 -- …` does
    result = run_cli("checkout", "m.bin")
    assert result.code == 0, result.err
    assert (root / "m.bin").read_text() == "v1"


def test_never_overwrites_unsaved_changes_without_force(tree):
    root = tree({"m.bin": "v1", "data": {"a": "1", "b": "2"}})
    run_cli("track", "m.bin", "data")
    (root / "m.bin").unlink()
    (root / "m.bin").write_text("my edit")
    (root / "data" / "a").unlink()
    (root / "data" / "a").write_text("edited member")
    (root / "data" / "extra").write_text("new file")
    (root / "data" / "b").unlink()
    before = {k: v for k, v in snapshot(root).items() if not k.startswith("data/b")}
    result = run_cli("checkout")
    assert result.code == 1
    assert result.err.strip() == (
        "merkl: error: 'data/a', 'm.bin' modified, not overwritten (use --force); "
        "'data/extra' added, not removed (use --force)"
    )
    assert (root / "data" / "b").read_text() == "2"  # restorable member restored anyway
    after = {k: v for k, v in snapshot(root).items() if not k.startswith("data/b")}
    assert after == before
    forced = run_cli("checkout", "--force")
    assert forced.code == 0, forced.err
    assert (root / "m.bin").read_text() == "v1"
    assert (root / "data" / "a").read_text() == "1"
    assert not (root / "data" / "extra").exists()


def test_checkout_removes_stored_extras_and_prunes_empty_folders(tree):
    root = tree({"data": {"a": "1"}})
    run_cli("track", "data")
    small = (root / "data.merkl").read_bytes()
    (root / "data" / "more").mkdir()
    (root / "data" / "more" / "b").write_text("2")
    run_cli("track", "data")
    (root / "data.merkl").write_bytes(small)
    result = checkout(Repo(root))
    assert result.removed == ["data/more/b"]
    assert result.ok
    assert sorted(os.listdir(root / "data")) == ["a"]


def test_objects_missing_from_the_store_are_reported(tree):
    root = tree({"a.bin": "A", "b.bin": "B"})
    run_cli("track", "a.bin", "b.bin")
    (root / "a.bin").unlink()
    (root / "b.bin").unlink()
    Repo(root).store.remove(hash_bytes(b"A"))
    result = run_cli("checkout")
    assert result.code == 1
    assert "'a.bin' not in the local store (run `merkl pull`)" in result.err
    assert (root / "b.bin").read_text() == "B"


def test_checkout_api_result_for_pull(tree):
    root = tree({"a.bin": "A", "d": {"x": "X"}})
    run_cli("track", "a.bin", "d")
    (root / "a.bin").unlink()
    result = checkout(Repo(root), ["a.bin"])
    assert result.restored == ["a.bin"]
    assert result.ok
    result = checkout(Repo(root), paths=["d"], force=False)
    assert result.unchanged == ["d/x"]
    assert result.restored == []
    with pytest.raises(TrackingError, match="'nope' is not tracked"):
        checkout(Repo(root), ["nope"])


@pytest.mark.parametrize("link", ["hardlink", "copy"])
def test_checkout_uses_the_configured_link_type(tree, link):
    root = tree({"a.bin": "A"})
    set_link_type(root, link)
    run_cli("track", "a.bin")
    (root / "a.bin").unlink()
    assert run_cli("checkout").code == 0
    assert not (root / "a.bin").is_symlink()
    assert (root / "a.bin").read_text() == "A"


def test_refuses_to_write_through_a_symlinked_folder(tree, tmp_path):
    """A hostile repo can commit `data -> /somewhere` plus a pointer inside `data/`."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tree({"real": {"f": "F"}})
    run_cli("track", "real")
    manifest_pointer = read_pointer(root / "real.merkl")
    (root / "evil").mkdir()
    os.symlink(outside, root / "evil" / "sub")
    # a directory pointer whose member path goes through the symlinked folder
    from merkl.tracking.manifest import Manifest, ManifestEntry

    manifest = Manifest.from_entries([ManifestEntry("sub/f", hash_bytes(b"F"), 1)])
    repo = Repo(root)
    repo.store.put_bytes(manifest.dump())
    write_pointer(root / "evil.merkl", Pointer(manifest.oid, 1, "evil", type="dir", files=1))
    assert manifest_pointer.oid != manifest.oid
    result = run_cli("checkout", "evil")
    assert result.code == 1
    assert "refusing to check out into 'evil/sub': it is a symlink" in result.err
    assert os.listdir(outside) == []


def test_malicious_manifest_paths_are_rejected(tree):
    root = tree({"x": "1"})
    repo = Repo(root)
    oid = hash_bytes(b"1")
    for bad in ("../escape", "/etc/passwd", "a/../../b", "", "a//b"):
        raw = orjson.dumps({"files": [[bad, oid, 1]], "format": 1, "hash": "blake3"})
        manifest_oid = repo.store.put_bytes(raw)
        write_pointer(root / "d.merkl", Pointer(manifest_oid, 1, "d", type="dir", files=1))
        result = run_cli("checkout")
        assert result.code == 1
        assert f"member path {bad!r} is not a plain relative path" in result.err
        assert not (root / "d").exists()
