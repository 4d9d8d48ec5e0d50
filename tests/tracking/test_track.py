"""`merkl track`: pointer files, the store, links, .gitignore, directories, link types."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
from tests.helpers import run_cli
from tests.tracking.conftest import set_link_type

from merkl.errors import ConfigError, MerklWarning
from merkl.hashing import hash_bytes, hash_file
from merkl.pointer import read_pointer
from merkl.repo import Repo
from merkl.tracking import iter_pointer_oids
from merkl.tracking.manifest import get_manifest
from merkl.tracking.track import track


def test_track_file_moves_it_into_the_store_and_links_back(tree):
    root = tree({"data": {"train.csv": "a,b\n1,2\n"}})
    result = run_cli("track", "data/train.csv")
    assert result.code == 0, result.err
    assert result.out.startswith("tracked   data/train.csv (8 B, blake3:")
    data = root / "data" / "train.csv"
    oid = hash_bytes(b"a,b\n1,2\n")
    obj = root / ".merkl" / "objects" / oid[:2] / oid[2:]
    assert data.is_symlink()
    assert not os.path.isabs(os.readlink(data))
    assert os.path.samefile(data, obj)
    assert data.read_text() == "a,b\n1,2\n"
    assert stat.S_IMODE(obj.stat().st_mode) == 0o444
    raw = (root / "data" / "train.csv.merkl").read_text()
    pointer = json.loads(raw)
    assert raw.endswith("}\n")
    assert list(pointer) == sorted(pointer)
    assert pointer["format"] == 1
    assert pointer["hash"] == f"blake3:{oid}"
    assert pointer["path"] == "data/train.csv"
    assert pointer["size"] == 8
    assert pointer["timestamp"].endswith("Z")
    assert (root / "data" / ".gitignore").read_text() == "/train.csv\n"


def test_retracking_adds_the_gitignore_entry_once_and_keeps_the_timestamp(tree):
    root = tree({"model.bin": b"weights"})
    (root / ".gitignore").write_text("/.merkl/\n*.log")  # no final newline
    assert run_cli("track", "model.bin").code == 0
    first = (root / "model.bin.merkl").read_bytes()
    again = run_cli("track", "model.bin")
    assert again.code == 0
    assert again.out.startswith("unchanged")
    assert (root / "model.bin.merkl").read_bytes() == first
    assert (root / ".gitignore").read_text() == "/.merkl/\n*.log\n/model.bin\n"


def test_retrack_after_a_change_updates_the_pointer(tree):
    root = tree({"model.bin": b"v1"})
    run_cli("track", "model.bin")
    old = read_pointer(root / "model.bin.merkl")
    (root / "model.bin").unlink()  # the link is read-only: replace the file, as tools do
    (root / "model.bin").write_bytes(b"version 2")
    assert run_cli("track", "model.bin").code == 0
    new = read_pointer(root / "model.bin.merkl")
    assert new.oid == hash_bytes(b"version 2") != old.oid
    assert new.size == 9
    assert (root / "model.bin").is_symlink()
    assert (root / "model.bin").read_bytes() == b"version 2"
    assert Repo(root).store.has(old.oid)  # the old version stays until gc


def test_identical_files_share_one_object(tree):
    root = tree({"a.bin": b"same", "b.bin": b"same"})
    assert run_cli("track", "a.bin", "b.bin").code == 0
    assert os.readlink(root / "a.bin") == os.readlink(root / "b.bin")
    assert len(list(Repo(root).store.iter_oids())) == 1


def test_gitignore_entries_match_exactly_the_tracked_name(tree):
    names = ["data[1]*.csv", "trailing ", "#hash", "!bang"]
    root = tree({**dict.fromkeys(names, "x"), "data1x.csv": "y", "trailing": "z"})
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    assert run_cli("track", *names).code == 0

    def ignored(name: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", name], cwd=root).returncode == 0

    assert all(ignored(n) for n in names)
    assert not ignored("data1x.csv")
    assert not ignored("trailing")
    assert not any(ignored(n + ".merkl") for n in names)


def test_track_directory_writes_one_pointer_covering_the_tree(tree):
    root = tree({"imgs": {"a.png": b"A", "sub": {"b.png": b"B", "c.png": b"A"}}})
    result = run_cli("track", "imgs")
    assert result.code == 0, result.err
    assert "imgs (3 files, 3 B" in result.out
    repo = Repo(root)
    pointer = read_pointer(root / "imgs.merkl")
    assert pointer.type == "dir"
    assert pointer.files == 3
    assert pointer.size == 3
    manifest = get_manifest(repo, pointer.oid)
    assert [(e.path, e.size) for e in manifest.entries] == [
        ("a.png", 1),
        ("sub/b.png", 1),
        ("sub/c.png", 1),
    ]
    assert manifest.oid == pointer.oid
    assert all((root / "imgs" / e.path).is_symlink() for e in manifest.entries)
    assert set(iter_pointer_oids(repo, pointer)) == {
        pointer.oid,
        hash_bytes(b"A"),
        hash_bytes(b"B"),
    }
    assert (root / ".gitignore").read_text().splitlines()[-1] == "/imgs"


def test_directory_hash_depends_on_names_and_content_only(tree, tmp_path):
    root = tree(
        {
            "d1": {"x": "1", "y": {"z": "2"}},
            "d2": {"y": {"z": "2"}, "x": "1"},
            "d3": {"x": "1", "y": {"w": "2"}},
        }
    )
    run_cli("track", "d1", "d2", "d3")
    oids = [read_pointer(root / f"d{i}.merkl").oid for i in (1, 2, 3)]
    assert oids[0] == oids[1] != oids[2]


def test_symlinks_leaving_the_directory_are_not_followed(tree, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not publish")
    root = tree({"data": {"a.csv": "1", "inner": {"b": "2"}}})
    os.symlink(secret, root / "data" / "leak")
    os.symlink("../../.gitignore", root / "data" / "inner" / "up")
    os.symlink("a.csv", root / "data" / "alias")
    os.symlink("inner", root / "data" / "dirlink")
    result = run_cli("track", "data")
    assert result.code == 0, result.err
    assert "skipped 3 symlink(s) pointing outside 'data': dirlink, inner/up, leak" in result.out
    manifest = get_manifest(Repo(root), read_pointer(root / "data.merkl").oid)
    assert [e.path for e in manifest.entries] == ["a.csv", "alias", "inner/b"]
    assert os.readlink(root / "data" / "leak") == str(secret)  # left alone
    assert secret.read_text() == "do not publish"


def test_retracking_a_directory_after_changes(tree):
    root = tree({"data": {"a": "1", "b": "2"}})
    run_cli("track", "data")
    first = read_pointer(root / "data.merkl")
    assert run_cli("track", "data").out.startswith("unchanged")
    (root / "data" / "b").unlink()
    (root / "data" / "c").write_text("3")
    assert run_cli("track", "data").out.startswith("tracked")
    second = read_pointer(root / "data.merkl")
    assert second.oid != first.oid
    assert second.files == 2
    assert all((root / "data" / n).is_symlink() for n in ("a", "c"))


@pytest.mark.parametrize("link", ["hardlink", "copy"])
def test_link_types(tree, link):
    root = tree({"m.bin": b"model"})
    set_link_type(root, link)
    assert run_cli("track", "m.bin").code == 0
    data = root / "m.bin"
    obj = Repo(root).store.oid_to_path(hash_bytes(b"model"))
    assert not data.is_symlink()
    assert data.read_bytes() == b"model"
    assert os.path.samefile(data, obj) == (link == "hardlink")
    writable = bool(data.stat().st_mode & 0o200)
    assert writable == (link == "copy")
    assert stat.S_IMODE(obj.stat().st_mode) == 0o444
    assert run_cli("track", "m.bin").out.startswith("unchanged")


def test_reflink_falls_back_to_a_copy_with_a_warning(tree):
    root = tree({"m.bin": b"model"})
    set_link_type(root, "reflink")
    from merkl.tracking import links

    links._warned.discard("reflink")
    with pytest.warns(MerklWarning, match="cannot reflink"):
        track(Repo(root), ["m.bin"])  # tmpfs/ext4/overlayfs cannot share extents
    assert not (root / "m.bin").is_symlink()
    assert (root / "m.bin").read_bytes() == b"model"


def test_unknown_link_type_is_a_config_error(tree):
    root = tree({"m.bin": b"model"})
    set_link_type(root, "teleport")
    with pytest.raises(ConfigError, match=r"\[core\] link = 'teleport'.*symlink, hardlink"):
        track(Repo(root), ["m.bin"])
    result = run_cli("track", "m.bin")
    assert result.code == 1
    assert "merkl.toml" in result.err
    assert not (root / "m.bin").is_symlink()


def test_changing_the_link_type_and_retracking_relinks(tree):
    root = tree({"m.bin": b"model"})
    run_cli("track", "m.bin")
    set_link_type(root, "copy")
    assert run_cli("track", "m.bin").code == 0
    assert not (root / "m.bin").is_symlink()
    assert (root / "m.bin").read_bytes() == b"model"


def test_big_file_hash_matches_blake3_and_the_store(tree):
    payload = os.urandom(9 << 20)  # above the multi-threaded mmap threshold
    root = tree({"big.bin": payload})
    assert run_cli("track", "big.bin").code == 0
    oid = read_pointer(root / "big.bin.merkl").oid
    assert oid == hash_bytes(payload) == hash_file(root / "big.bin")
    assert Repo(root).store.verify(oid)


def test_track_from_a_subdirectory(tree, monkeypatch):
    root = tree({"data": {"x.csv": "1"}})
    monkeypatch.chdir(root / "data")
    assert run_cli("track", "x.csv").code == 0
    assert read_pointer(root / "data" / "x.csv.merkl").path == "data/x.csv"
