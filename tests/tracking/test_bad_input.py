"""The issue's bad-input list: one clear line naming the file, exit 1, nothing changed."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.helpers import run_cli
from tests.tracking.conftest import set_link_type, snapshot

from merkl.hashing import hash_bytes

GOOD_HASH = "blake3:" + hash_bytes(b"x")

BAD_POINTERS = {
    "invalid-json": ("{not json", "not a valid merkl pointer"),
    "not-an-object": ("[1, 2]", "expected a JSON object"),
    "unknown-format": (
        f'{{"format": 9, "hash": "{GOOD_HASH}", "path": "d.bin", "size": 1}}',
        "unknown pointer format 9",
    ),
    "malformed-hash": (
        '{"format": 1, "hash": "blake3:xyz", "path": "d.bin", "size": 1}',
        "field 'hash' must look like 'blake3:<64 hex digits>', got 'blake3:xyz'",
    ),
    "md5-hash": (
        '{"format": 1, "hash": "md5:d41d8cd98f00b204e9800998ecf8427e", "path": "d.bin", '
        '"size": 1}',
        "field 'hash'",
    ),
    "absolute-path": (
        f'{{"format": 1, "hash": "{GOOD_HASH}", "path": "/etc/passwd", "size": 1}}',
        "must be relative to the repository, got '/etc/passwd'",
    ),
    "escaping-path": (
        f'{{"format": 1, "hash": "{GOOD_HASH}", "path": "../../outside", "size": 1}}',
        "escapes the repository: '../../outside'",
    ),
}


def _one_error_line(result) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("merkl: error: ")
    return lines[0]


@pytest.mark.parametrize("command", ["status", "checkout", "gc", "untrack"])
@pytest.mark.parametrize("case", list(BAD_POINTERS))
def test_bad_pointer_is_reported_and_nothing_changes(tree, case, command):
    content, expected = BAD_POINTERS[case]
    root = tree({"ok.bin": b"fine", "d.bin": b"x"})
    assert run_cli("track", "ok.bin").code == 0
    (root / "d.bin.merkl").write_text(content)
    (root / "ok.bin").unlink()  # checkout would restore it if it did anything
    before = snapshot(root)
    args = [command, "d.bin"] if command == "untrack" else [command]
    result = run_cli(*args)
    assert result.code == 1
    line = _one_error_line(result)
    assert "d.bin.merkl" in line
    assert expected in line
    assert snapshot(root) == before


def _refused(root: Path, *args: str) -> str:
    before = snapshot(root)
    result = run_cli("track", *args)
    assert result.code == 1, result
    assert snapshot(root) == before
    return _one_error_line(result)


def test_track_refuses_paths_outside_the_repo(tree, tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("1")
    root = tree({"a": "1"})
    line = _refused(root, str(outside))
    assert repr(str(outside)) in line
    assert "outside the repository" in line
    assert "'../../outside'" in _refused(root, "../../outside")
    assert outside.read_text() == "1"
    assert not outside.is_symlink()


def test_track_refuses_merkl_internals(tree):
    root = tree({"a": "1"})
    line = _refused(root, ".merkl/index.sqlite")
    assert "'.merkl/index.sqlite'" in line
    assert "inside merkl's own .merkl/" in line
    assert "'.merkl'" in _refused(root, ".merkl")


def test_track_refuses_a_pointer_file(tree):
    root = tree({"a.bin": "1"})
    run_cli("track", "a.bin")
    line = _refused(root, "a.bin.merkl")
    assert "'a.bin.merkl'" in line
    assert "track the data file 'a.bin' instead" in line


def test_track_refuses_a_missing_file(tree):
    root = tree({"a": "1"})
    line = _refused(root, "a", "nope.csv")  # checked before `a` is touched
    assert "'nope.csv'" in line
    assert "no such file or directory" in line


def test_track_refuses_symlinks_and_nested_tracking(tree, tmp_path):
    root = tree({"data": {"a": "1", "b": "2"}, "other": {"c": "3"}, "real.bin": "r"})
    os.symlink("real.bin", root / "alias.bin")
    assert "is a symlink to" in _refused(root, "alias.bin")
    run_cli("track", "data", "other/c")
    line = _refused(root, "data/a")
    assert "'data/a'" in line
    assert "inside the tracked directory 'data'" in line
    line = _refused(root, "other")
    assert "contains the tracked file 'other/c'" in line
    assert "repository root" in _refused(root, ".")


def test_full_disk_during_track_leaves_the_original_intact(tmp_path, monkeypatch):
    """A real full filesystem: a 1 MiB tmpfs (root can mount one), else a file-size limit."""
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
        ).returncode
        == 0
    )
    try:
        if mounted:
            _full_tmpfs_scenario(mount, monkeypatch)
        else:
            _file_size_limit_scenario(tmp_path)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def _full_tmpfs_scenario(mount: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(mount)
    assert run_cli("init").code == 0
    payload = os.urandom(400 << 10)
    for link in ("copy", "symlink"):
        set_link_type(mount, link)
        data = mount / f"data-{link}.bin"
        data.write_bytes(payload)
        filler = mount / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as handle:
            # copy: leave room for the pointer, not for the copy; symlink: leave none at all
            handle.write(
                b"\0"
                * (
                    os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
                    - (64 << 10 if link == "copy" else 0)
                )
            )
        before = snapshot(mount)
        result = run_cli("track", data.name)
        assert result.code == 1, result
        line = _one_error_line(result)
        assert repr(data.name) in line, line
        assert "left unchanged" in line, line
        assert snapshot(mount) == before
        assert data.read_bytes() == payload
        assert not data.is_symlink()
        filler.unlink()
        data.unlink()


def _file_size_limit_scenario(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, resource, signal, sys
        from merkl.cli import main
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))
        sys.exit(main(["track", "data.bin"]))
        """
    )
    work = tmp_path / "limited"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "merkl", "init"], cwd=work, check=True)
    set_link_type(work, "copy")
    payload = os.urandom(400 << 10)
    (work / "data.bin").write_bytes(payload)
    before = snapshot(work)
    proc = subprocess.run([sys.executable, "-c", script], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "'data.bin'" in proc.stderr
    assert "left unchanged" in proc.stderr
    assert snapshot(work) == before


def test_write_failure_in_another_process_leaves_the_original_intact(tmp_path):
    """Writes beyond RLIMIT_FSIZE fail with EFBIG, as on a full disk, without mounting."""
    _file_size_limit_scenario(tmp_path)
