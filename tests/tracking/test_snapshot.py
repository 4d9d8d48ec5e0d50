"""Folder fingerprints: `merkl status` skips the manifest of a folder unchanged since it was
last seen clean, and every change after that is still found."""

from __future__ import annotations

import os
import time

import pytest
from tests.helpers import run_cli
from tests.tracking.conftest import set_link_type

import merkl.cache.stat_cache
import merkl.tracking.manifest
import merkl.tracking.state
from merkl.ops.status import status
from merkl.repo import Repo
from merkl.tracking.state import State

_OLD = time.time() - 3600


def _age(root, folder="data", folders=False):
    """Backdate the members (and so the store objects they link to) past the racy window;
    with `folders`, the folders too (then their listing is recorded as well)."""
    for path in (root / folder).rglob("*"):
        if path.is_file():
            os.utime(path, (_OLD, _OLD))
    if folders:
        for path in [root / folder, *(root / folder).rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                os.utime(path, (_OLD, _OLD))


def _listed(root, folder="data"):
    from merkl.tracking import snapshot

    return bool(snapshot.load(Repo(root), str(root / folder)).folders)


def _recorded(root, folder="data"):
    return Repo(root).index.find_dir_snapshot(str(root / folder)) is not None


def _state(root):
    [item] = status(Repo(root))
    return item


def test_an_unchanged_folder_is_clean_without_its_manifest(tree, monkeypatch):
    root = tree({"data": {"a": "1", "sub": {"b": "2"}}})
    run_cli("track", "data")
    _age(root)
    assert _state(root).state is State.CLEAN  # checked member by member, then recorded
    assert _recorded(root)
    # Only the fingerprint can answer now: reading the manifest fails.
    monkeypatch.setattr(merkl.tracking.manifest, "find_manifest", _fail)
    item = _state(root)
    assert item.state is State.CLEAN
    assert not item.changes
    rows = run_cli("status", "--json")
    assert '"state": "clean"' in rows.out


def _fail(repo, oid):
    raise AssertionError("the manifest was read")


def _no_racy_window(monkeypatch):
    """Pretend every change is older than the racy window (as if the clock had moved on)."""
    from merkl.tracking import snapshot

    monkeypatch.setattr(snapshot, "racy_since", lambda: float("inf"))
    monkeypatch.setattr(merkl.cache.stat_cache, "racy_since", lambda: float("inf"))


def _count_reads(monkeypatch):
    from merkl.tracking import snapshot

    read = []
    real = snapshot.hash_file
    monkeypatch.setattr(snapshot, "hash_file", lambda path: read.append(path) or real(path))
    return read


def test_track_records_the_snapshot_and_its_racy_members(tree, monkeypatch):
    from merkl.tracking import snapshot

    root = tree({"data": {"a": "1", "sub": {"b": "2"}}})
    run_cli("track", "data")  # members written a moment ago: inside the racy window
    known = snapshot.load(Repo(root), str(root / "data"))
    assert known.members == ("a", "sub/b")
    assert known.racy == (0, 1)
    assert not known.folders  # just relinked: too recent to rely on their mtimes
    # The first status needs no manifest: it re-reads just the racy members.
    monkeypatch.setattr(merkl.tracking.manifest, "find_manifest", _fail)
    read = _count_reads(monkeypatch)
    assert _state(root).state is State.CLEAN
    assert len(read) == 2
    # Once they are old enough, a status sheds the marks and records the listing.
    _no_racy_window(monkeypatch)
    assert _state(root).state is State.CLEAN
    known = snapshot.load(Repo(root), str(root / "data"))
    assert known.racy == ()
    assert known.folders
    read.clear()
    assert _state(root).state is State.CLEAN
    assert read == []
    rows = {row[0] for row in Repo(root).index.iter_file_states()}
    assert str(root / "data" / "a") in rows  # re-read and settled: stat-cached again


def _same_tick_fingerprint(files, stats):
    """A fingerprint blind to ctime: an edit whose mtime is put back then looks exactly like
    one made in the same clock tick as the recording (every field the same)."""
    from merkl.hashing import hash_bytes

    if None in stats:
        return None
    numbers = [(tuple(st[:7]), st.st_mtime_ns) for st in stats]
    return hash_bytes(repr((list(files), numbers)).encode())


def _edit_in_the_same_tick(member, text):
    st = os.stat(member)
    with open(member, "r+") as handle:  # through the link: root ignores the read-only mode
        handle.write(text)
    os.utime(member, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can write through a read-only link")
@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_an_edit_in_the_same_tick_right_after_track_is_found(tree, monkeypatch, link):
    from merkl.tracking import snapshot

    root = tree({"data": {"a": "1", "b": "2"}})
    set_link_type(root, link)
    monkeypatch.setattr(snapshot, "fingerprint", _same_tick_fingerprint)
    run_cli("track", "data")
    _edit_in_the_same_tick(root / "data" / "a", "X")  # same size, same mtime
    item = _state(root)
    assert item.state is State.MODIFIED
    assert item.changes.modified == ["a"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can write through a read-only link")
def test_an_edit_in_the_same_tick_is_not_stat_cached(tree):
    root = tree({"big": "1234"})
    run_cli("track", "big")
    _edit_in_the_same_tick(root / "big", "5678")  # the stat cache key is the same
    assert _state(root).state is State.MODIFIED


def test_an_edit_right_after_track_is_found(tree):
    root = tree({"data": {"a": "1", "b": "2"}})
    run_cli("track", "data")
    (root / "data" / "a").unlink()
    (root / "data" / "a").write_text("1")  # even the same content: another file now
    (root / "data" / "b").unlink()
    (root / "data" / "b").write_text("22")
    item = _state(root)
    assert item.state is State.MODIFIED
    assert item.changes.modified == ["b"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can write through a read-only link")
def test_an_edit_while_track_links_is_not_recorded_clean(tree, monkeypatch):
    """A member edited after it was hashed (with an mtime old enough to look settled) is not
    what its oid says: track records neither its stat nor the folder's snapshot."""
    import merkl.tracking.track as track_module

    root = tree({"data": {"a": "1", "b": "2"}})
    _age(root)
    real = track_module._commit

    def commit_then_edit(*args):
        changed = real(*args)
        with open(root / "data" / "a", "a") as handle:
            handle.write("edited")
        os.utime(root / "data" / "a", (_OLD - 60, _OLD - 60))
        return changed

    monkeypatch.setattr(track_module, "_commit", commit_then_edit)
    run_cli("track", "data")
    assert not _recorded(root)
    item = _state(root)
    assert item.state is State.MODIFIED
    assert item.changes.modified == ["a"]


def test_a_folder_of_copies_is_never_recorded(tree):
    root = tree({"data": {"a": "1"}})
    set_link_type(root, "copy")
    run_cli("track", "data")
    _age(root)
    assert _state(root).state is State.CLEAN
    assert not _recorded(root)


@pytest.mark.parametrize("folders", [False, True], ids=["fingerprint", "listing"])
@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_changes_after_recording_are_found(tree, link, folders):
    root = tree({"data": {"a": "1", "b": "2", "c": "3", "sub": {"d": "4"}, "empty": {}}})
    set_link_type(root, link)
    run_cli("track", "data")
    _age(root, folders=folders)
    assert _state(root).state is State.CLEAN
    assert _recorded(root)
    assert _listed(root) is folders

    (root / "data" / "new").write_text("4")
    item = _state(root)
    assert item.state is State.MODIFIED
    assert item.changes.added == ["new"]
    (root / "data" / "new").unlink()

    (root / "data" / "empty" / "deep").write_text("5")  # only that folder's mtime changes
    item = _state(root)
    assert item.state is State.MODIFIED
    assert item.changes.added == ["empty/deep"]
    (root / "data" / "empty" / "deep").unlink()

    (root / "data" / "b").unlink()
    item = _state(root)
    assert item.state is State.MISSING
    assert item.changes.deleted == ["b"]
    run_cli("checkout")
    _age(root)
    assert _state(root).state is State.CLEAN


@pytest.mark.parametrize("folders", [False, True], ids=["fingerprint", "listing"])
@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_removed_object_is_found(tree, link, folders):
    root = tree({"data": {"a": "1", "b": "2"}})
    set_link_type(root, link)
    run_cli("track", "data")
    _age(root, folders=folders)
    assert _state(root).state is State.CLEAN
    assert _recorded(root)
    repo = Repo(root)
    member = root / "data" / "a"
    target = repo.store.oid_to_path(_oid_of(repo, member))
    os.chmod(target.parent, 0o755)
    target.unlink()
    expected = State.NO_DATA if link == "symlink" else State.NOT_IN_CACHE
    assert _state(root).state is expected


def _oid_of(repo, path):
    from merkl.hashing import hash_file

    return hash_file(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can write through a read-only link")
@pytest.mark.parametrize("folders", [False, True], ids=["fingerprint", "listing"])
def test_an_edit_through_the_link_is_found_even_with_the_old_mtime(tree, folders):
    root = tree({"data": {"a": "1", "b": "2"}})
    run_cli("track", "data")
    _age(root, folders=folders)
    assert _state(root).state is State.CLEAN
    assert _recorded(root)
    member = root / "data" / "a"
    with open(member, "a") as handle:  # root ignores the read-only mode
        handle.write("edited")
    os.utime(member, (_OLD, _OLD))  # even an edit that restores the mtime changes the size
    item = _state(root)
    assert item.state is State.MODIFIED
    assert item.changes.modified == ["a"]


def test_retracking_changes_the_pointer_and_the_answer(tree):
    root = tree({"data": {"a": "1"}})
    run_cli("track", "data")
    _age(root)
    assert _state(root).state is State.CLEAN
    assert _recorded(root)
    (root / "data" / "a").unlink()
    (root / "data" / "a").write_text("changed")
    run_cli("track", "data")
    _age(root)
    assert _state(root).state is State.CLEAN
    assert Repo(root).index.find_dir_snapshot(str(root / "data"))[0] == _pointer_oid(root)


def _pointer_oid(root):
    from merkl.pointer import read_pointer

    return read_pointer(root / "data.merkl").oid


@pytest.mark.parametrize("threshold", [2, 10**6])  # two threads, one thread
def test_stat_files_on_one_or_two_threads(tmp_path, monkeypatch, threshold):
    from merkl.tracking import snapshot

    monkeypatch.setattr(snapshot, "_PARALLEL_STATS", threshold)
    paths = []
    for i in range(6):
        (tmp_path / f"f{i}").write_text(str(i))
        paths.append(str(tmp_path / f"f{i}"))
    os.symlink("loop", tmp_path / "loop")  # a link to itself
    paths += [str(tmp_path / "gone"), str(tmp_path / "loop"), str(tmp_path / "f0" / "x")]
    stats = snapshot.stat_files(paths)
    assert [st.st_size if st else None for st in stats] == [1] * 6 + [None] * 3


def test_a_link_loop_in_a_tracked_folder_does_not_stop_status(tree):
    root = tree({"data": {"a": "1"}})
    run_cli("track", "data")
    os.symlink("loop", root / "data" / "loop")
    result = run_cli("status", "--json")
    assert result.code == 0, result.err


def test_an_unchanged_listing_spares_the_walk(tree, monkeypatch):
    root = tree({"data": {"a": "1", "sub": {"b": "2"}}})
    run_cli("track", "data")
    _age(root, folders=True)
    assert _state(root).state is State.CLEAN
    assert _listed(root)

    def no_walk(*args, **kwargs):
        raise AssertionError("the folder was walked")

    monkeypatch.setattr(merkl.tracking.state, "scan_dir", no_walk)
    assert _state(root).state is State.CLEAN
    os.utime(root / "data" / "sub", None)  # a folder changed: walked again
    with pytest.raises(AssertionError, match="walked"):
        _state(root)


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_re_stored_object_is_not_taken_for_the_member(tree, link, monkeypatch):
    """The listing stats store objects directly; an object removed and stored again (a new
    inode) is no longer what the member was, so the folder is checked member by member."""
    root = tree({"data": {"a": "1", "b": "2"}})
    set_link_type(root, link)
    run_cli("track", "data")
    _age(root, folders=True)
    assert _state(root).state is State.CLEAN
    assert _listed(root)
    repo = Repo(root)
    target = repo.store.oid_to_path(_oid_of(repo, root / "data" / "a"))
    data = target.read_bytes()
    os.chmod(target.parent, 0o755)
    target.unlink()
    target.write_bytes(data)
    read = []
    real = merkl.tracking.manifest.find_manifest
    monkeypatch.setattr(
        merkl.tracking.manifest, "find_manifest", lambda *a: read.append(1) or real(*a)
    )
    assert _state(root).state is State.CLEAN
    assert read  # the fingerprint did not match: the manifest was read
