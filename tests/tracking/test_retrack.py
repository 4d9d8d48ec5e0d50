"""Re-tracking a folder after a few changes reads, links and records only what changed, and
the result is what tracking the folder afresh would give."""

from __future__ import annotations

import os
import time

import pytest
from tests.helpers import run_cli

import merkl.hashing
import merkl.tracking.track as track_module
from merkl.hashing import hash_file as _hash_file  # not the counted one
from merkl.ops.status import status
from merkl.pointer import read_pointer
from merkl.repo import Repo
from merkl.tracking.manifest import get_manifest
from merkl.tracking.state import State

_OLD = time.time() - 3600
FILES = {f"part{i // 10}": {f"f{i:02d}": f"row {i}\n" for i in range(i, i + 10)} for i in (0, 10)}


@pytest.fixture
def tracked(tree):
    """A tracked folder of 20 files, older than the racy window (as data usually is)."""
    root = tree({"data": FILES})
    for path in (root / "data").rglob("*"):
        os.utime(path, (_OLD, _OLD))
    assert run_cli("track", "data").code == 0
    return root


@pytest.fixture
def work(monkeypatch):
    """Counts the files re-tracking reads and the members it links."""
    done: dict[str, list[str]] = {"read": [], "linked": []}
    read, link = merkl.hashing.hash_file, track_module._link_in

    def counted_read(path):
        done["read"].append(os.path.basename(path))
        return read(path)

    def counted_link(repo, path, *args):
        done["linked"].append(os.path.basename(path))
        return link(repo, path, *args)

    monkeypatch.setattr(merkl.hashing, "hash_file", counted_read)
    monkeypatch.setattr(track_module, "_link_in", counted_link)
    return done


def _manifest(root):
    repo = Repo(root)
    return {
        e.path: e.oid for e in get_manifest(repo, read_pointer(root / "data.merkl").oid).entries
    }


def _fresh_manifest(root):
    """What tracking the folder's current content from scratch would record."""
    return {
        p.relative_to(root / "data").as_posix(): _hash_file(p)
        for p in sorted((root / "data").rglob("*"))
        if p.is_file()
    }


def _retrack(root):
    result = run_cli("track", "data")
    assert result.code == 0, result.err
    [item] = status(Repo(root))
    assert item.state is State.CLEAN
    assert _manifest(root) == _fresh_manifest(root)


def test_after_one_change_only_that_member_is_read_and_linked(tracked, work):
    member = tracked / "data" / "part1" / "f13"
    member.unlink()
    member.write_text("changed\n")
    _retrack(tracked)
    assert work["read"] == ["f13"]
    assert work["linked"] == ["f13"]


def test_after_a_deleted_member_nothing_is_read(tracked, work):
    (tracked / "data" / "part0" / "f04").unlink()
    _retrack(tracked)
    assert "part0/f04" not in _manifest(tracked)
    assert work["read"] == []
    assert work["linked"] == []


def test_after_an_added_member_only_it_is_read_and_linked(tracked, work):
    (tracked / "data" / "part1" / "new").write_text("new\n")
    _retrack(tracked)
    assert "part1/new" in _manifest(tracked)
    assert work["read"] == ["new"]
    assert work["linked"] == ["new"]


def test_an_unchanged_folder_is_not_relinked(tracked, work):
    before = (tracked / "data.merkl").read_bytes()
    _retrack(tracked)
    assert (tracked / "data.merkl").read_bytes() == before
    assert work == {"read": [], "linked": []}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can write through a read-only link")
def test_an_edit_through_the_link_is_read_again(tracked, work):
    member = tracked / "data" / "part0" / "f01"
    with open(member, "a") as handle:  # into the object itself: the link stays as it was
        handle.write("more\n")
    os.utime(member, (_OLD, _OLD))  # even with the old mtime: the size changed
    _retrack(tracked)
    assert work["read"] == ["f01"]
