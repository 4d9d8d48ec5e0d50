"""`merkl untrack`: the data stays as ordinary writable files; pointer and ignore line go."""

from __future__ import annotations

import os

from tests.helpers import run_cli

from merkl.hashing import hash_bytes
from merkl.repo import Repo


def test_untrack_file_and_directory(tree):
    root = tree({"m.bin": "M", "d": {"a": "A", "s": {"b": "B"}}})
    (root / ".gitignore").write_text("*.log\n")
    run_cli("track", "m.bin", "d")
    result = run_cli("untrack", "m.bin", "d.merkl")
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["untracked m.bin", "untracked d"]
    for path in (root / "m.bin", root / "d" / "a", root / "d" / "s" / "b"):
        assert not path.is_symlink()
        assert os.stat(path).st_mode & 0o200
    assert (root / "d" / "s" / "b").read_text() == "B"
    assert not (root / "m.bin.merkl").exists()
    assert not (root / "d.merkl").exists()
    assert (root / ".gitignore").read_text() == "*.log\n"
    (root / "m.bin").write_text("editable now")
    assert Repo(root).store.has(hash_bytes(b"M"))  # gc decides about the object


def test_untrack_restores_missing_data_from_the_store(tree):
    root = tree({"m.bin": "M"})
    run_cli("track", "m.bin")
    (root / "m.bin").unlink()
    assert run_cli("untrack", "m.bin").code == 0
    assert (root / "m.bin").read_text() == "M"
    assert not (root / "m.bin").is_symlink()


def test_untrack_refuses_when_the_data_exists_nowhere(tree):
    root = tree({"m.bin": "M", "n.bin": "N"})
    run_cli("track", "m.bin", "n.bin")
    (root / "m.bin").unlink()
    Repo(root).store.remove(hash_bytes(b"M"))
    result = run_cli("untrack", "n.bin", "m.bin")
    assert result.code == 1
    assert "cannot untrack 'm.bin': its data is neither in the work tree nor" in result.err
    assert (root / "n.bin.merkl").exists()
    assert (root / "n.bin").is_symlink()


def test_untrack_a_path_that_is_not_tracked(tree):
    tree({"plain.txt": "p"})
    result = run_cli("untrack", "plain.txt")
    assert result.code == 1
    assert "'plain.txt' is not tracked" in result.err
    assert run_cli("untrack").code == 2


def test_hardlinked_files_become_private_copies(tree):
    from tests.tracking.conftest import set_link_type

    root = tree({"m.bin": "M"})
    set_link_type(root, "hardlink")
    run_cli("track", "m.bin")
    assert os.stat(root / "m.bin").st_nlink == 2
    run_cli("untrack", "m.bin")
    assert os.stat(root / "m.bin").st_nlink == 1
    (root / "m.bin").write_text("changed")
    assert Repo(root).store.get_bytes(hash_bytes(b"M")) == b"M"
