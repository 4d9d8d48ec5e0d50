"""Folders as task inputs: `merkl.path` / `read_file` on a folder hash it as `merkl track` does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import merkl.cache.stat_cache
from merkl import path, read_file
from merkl.pointer import pointer_path, read_pointer
from tests.helpers import import_fresh, run_cli, write_module


def _make_images(root: Path) -> Path:
    folder = root / "data" / "images"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"a" * 10)
    (folder / "sub" / "b.png").write_bytes(b"b" * 20)
    return folder


def test_untracked_folder_hashes_as_merkl_track_records_it(repo):
    folder = _make_images(repo.root)
    before = path(folder).hash
    assert run_cli("track", "data/images").code == 0
    assert read_pointer(pointer_path(folder)).oid == before
    assert path(folder).hash == before  # tracked now: from its pointer
    assert read_file(folder).hash == before


def test_a_tracked_clean_folder_is_not_read_again(repo, monkeypatch):
    folder = _make_images(repo.root)
    assert run_cli("track", "data/images").code == 0
    expected = read_pointer(pointer_path(folder)).oid

    def no_reading(file):
        raise AssertionError(f"{file} was read again")

    monkeypatch.setattr(merkl.cache.stat_cache, "hash_file", no_reading)
    assert path(folder).hash == expected


def test_a_changed_member_changes_the_hash_tracked_or_not(repo):
    folder = _make_images(repo.root)
    untracked = path(folder).hash
    (folder / "sub" / "b.png").write_bytes(b"c" * 21)
    assert path(folder).hash != untracked
    assert run_cli("track", "data/images").code == 0
    tracked = path(folder).hash
    (folder / "new.png").write_bytes(b"new")
    assert path(folder).hash not in (untracked, tracked)
    (folder / "new.png").unlink()
    assert path(folder).hash == tracked


def test_a_folder_reader_gets_the_path_and_only_readers_rerun(repo):
    folder = _make_images(repo.root)
    (repo.root / "other.txt").write_text("other")
    write_module(
        repo.root,
        "folderpipe",
        """
        from pathlib import Path
        from merkl import path, read_file, task

        RUNS = []

        @task
        def count(folder):
            RUNS.append("count")
            assert isinstance(folder, Path) and folder.is_dir()
            return sorted(p.name for p in folder.rglob("*.png"))

        @task
        def size(data):
            RUNS.append("size")
            return len(data)

        def pipeline():
            return count(read_file("data/images")), size(read_file("other.txt"))
        """,
    )
    module = import_fresh(repo.root, "folderpipe")
    result = run_cli("run", "folderpipe.pipeline")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == "(['a.png', 'b.png'], 5)"
    assert module.RUNS == ["count", "size"]
    (folder / "c.png").write_bytes(b"c")
    result = run_cli("run", "folderpipe.pipeline")
    assert result.out.splitlines()[-1] == "(['a.png', 'b.png', 'c.png'], 5)"
    assert module.RUNS == ["count", "size", "count"]


def test_a_tracked_folder_not_in_the_work_tree_hashes_from_its_pointer(repo):
    folder = _make_images(repo.root)
    assert run_cli("track", "data/images").code == 0
    expected = path(folder).hash
    shutil.rmtree(folder)
    ref = path(folder)
    assert ref.hash == expected
    with pytest.raises(FileNotFoundError, match=r"input folder .* is tracked but not in the work"):
        ref.resolve(None)  # type: ignore[arg-type]
