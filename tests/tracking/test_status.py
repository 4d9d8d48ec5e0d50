"""`merkl status`: the five states, directory details, JSON, and the stat cache."""

from __future__ import annotations

import contextlib
import json
import os
import time

import pytest
from tests.helpers import run_cli

import merkl.cache.stat_cache
import merkl.hashing
from merkl.ops.status import status
from merkl.repo import Repo
from merkl.tracking.state import State


def _states(root) -> dict[str, str]:
    result = run_cli("status", "--json")
    assert result.code == 0, result.err
    return {row["path"]: row["state"] for row in json.loads(result.out)}


def test_every_state(tree):
    root = tree({"clean": "c", "modified": "m", "missing": "g", "uncached": "u", "nodata": "n"})
    assert run_cli("track", *["clean", "modified", "missing", "uncached", "nodata"]).code == 0
    repo = Repo(root)
    (root / "modified").unlink()
    (root / "modified").write_text("changed")
    (root / "missing").unlink()
    # the store lost the object but the work tree has the content (a copy)
    (root / "uncached").unlink()
    (root / "uncached").write_text("u")
    repo.store.remove(merkl.hashing.hash_bytes(b"u"))
    repo.store.remove(merkl.hashing.hash_bytes(b"n"))  # now a dangling link
    assert _states(root) == {
        "clean": "clean",
        "missing": "missing",
        "modified": "modified",
        "nodata": "pointer without data",
        "uncached": "not in cache",
    }
    table = run_cli("status")
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split() == ["state", "path", "details", "what", "to", "do"]
    assert any(
        line.startswith("missing") and "`merkl checkout` restores it" in line for line in lines
    )
    assert lines[-1] == (
        "5 tracked: 1 clean, 1 missing, 1 modified, 1 pointer without data, 1 not in cache"
    )


def test_no_tracked_files(repo):
    result = run_cli("status")
    assert result.code == 0
    assert result.out.strip() == "no tracked files"
    assert run_cli("status", "--json").out.strip() == "[]"


def test_directory_details(tree):
    root = tree({"data": {"a": "1", "b": "2", "sub": {"c": "3"}}})
    run_cli("track", "data")
    (root / "data" / "a").unlink()
    (root / "data" / "a").write_text("changed")
    (root / "data" / "sub" / "c").unlink()
    (root / "data" / "new").write_text("4")
    [row] = json.loads(run_cli("status", "--json").out)
    assert row["state"] == "modified"
    assert row["type"] == "dir"
    assert row["changes"] == {"modified": ["a"], "added": ["new"], "deleted": ["sub/c"]}
    assert "1 modified, 1 added, 1 deleted" in run_cli("status").out


def test_directory_only_deleted_members_is_missing(tree):
    root = tree({"data": {"a": "1", "b": "2"}})
    run_cli("track", "data")
    (root / "data" / "a").unlink()
    assert _states(root) == {"data": "missing"}
    for name in ("a", "b"):
        (root / "data" / name).unlink(missing_ok=True)
    (root / "data").rmdir()
    assert _states(root) == {"data": "missing"}


def test_directory_without_manifest(tree):
    root = tree({"data": {"a": "1"}})
    run_cli("track", "data")
    repo = Repo(root)
    pointer_oid = json.loads((root / "data.merkl").read_text())["hash"][7:]
    repo.store.remove(pointer_oid)
    assert _states(root) == {"data": "not in cache"}
    (root / "data" / "b").write_text("2")
    assert _states(root) == {"data": "modified"}
    for name in ("a", "b"):
        (root / "data" / name).unlink()
    (root / "data").rmdir()
    assert _states(root) == {"data": "pointer without data"}


def test_status_of_selected_paths(tree):
    root = tree({"a": "1", "d": {"b": "2"}})
    run_cli("track", "a", "d")
    assert set(_states_for(root, "a")) == {"a"}
    assert set(_states_for(root, "d/b")) == {"d"}  # a member selects its directory
    result = run_cli("status", "nope")
    assert result.code == 1
    assert "'nope' is not tracked" in result.err


def _states_for(root, *paths):
    result = run_cli("status", "--json", *paths)
    assert result.code == 0, result.err
    return {row["path"]: row["state"] for row in json.loads(result.out)}


def test_unchanged_files_are_never_reread(tree, monkeypatch):
    root = tree({"d": {f"f{i}": str(i) for i in range(50)}, "big": "x" * 1000})
    for path in [root / "big", *(root / "d").iterdir()]:  # older than the racy window
        os.utime(path, (time.time() - 3600,) * 2)
    run_cli("track", "d", "big")
    calls = []
    real = merkl.cache.stat_cache.hash_file
    monkeypatch.setattr(merkl.cache.stat_cache, "hash_file", lambda p: calls.append(p) or real(p))
    assert {i.state for i in status(Repo(root))} == {State.CLEAN}
    assert calls == []
    (root / "big").unlink()
    (root / "big").write_text("y" * 1000)
    assert [i.state for i in status(Repo(root))] == [State.MODIFIED, State.CLEAN]
    assert [os.path.basename(p) for p in calls] == ["big"]


@pytest.mark.parametrize("link", ["hardlink", "copy"])
def test_editing_a_copy_in_place_is_detected(tree, link):
    from tests.tracking.conftest import set_link_type

    root = tree({"m.bin": "model"})
    set_link_type(root, link)
    run_cli("track", "m.bin")
    if link == "copy":
        with open(root / "m.bin", "a") as handle:
            handle.write("!")
        assert _states(root) == {"m.bin": "modified"}
    else:
        with pytest.raises(PermissionError) if os.geteuid() else contextlib.nullcontext():
            (root / "m.bin").write_text("edited")  # read-only (root may still write)
        expected = "clean" if os.geteuid() else "modified"
        assert _states(root) == {"m.bin": expected}


def test_a_folder_where_a_tracked_file_was_is_modified(tree):
    root = tree({"m.bin": "M"})
    run_cli("track", "m.bin")
    (root / "m.bin").unlink()
    (root / "m.bin").mkdir()
    (root / "m.bin" / "inner").write_text("x")
    assert _states(root) == {"m.bin": "modified"}
    assert run_cli("checkout").code == 1
    assert run_cli("checkout", "--force").code == 0
    assert (root / "m.bin").read_text() == "M"


def test_directory_member_edited_through_its_link_is_modified(tree):
    root = tree({"data": {"a": "1", "b": "2"}})
    run_cli("track", "data")
    member = root / "data" / "a"
    if os.geteuid() != 0:
        with pytest.raises(PermissionError):
            member.write_text("edited")
        return
    with open(member, "a") as handle:  # root ignores the read-only mode
        handle.write("edited")
    [row] = json.loads(run_cli("status", "--json").out)
    assert row["state"] == "modified"
    assert row["changes"]["modified"] == ["a"]
