"""Issue 14: tracked data is never lost or silently wrong — as root, under concurrency, after
kill -9. One test (or more) per case the issue lists; they run as root on this machine, where
a store object's 0444 mode does not stop an in-place edit, and `test_non_root_*` checks what
differs for an ordinary user.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from merkl.ops.verify import verify
from merkl.repo import Repo
from tests.helpers import run_cli, run_merkl_process
from tests.reliability.crashpoint import child_env, crash_at

IS_ROOT = os.geteuid() == 0


def _obj(repo: Repo, oid: str) -> Path:
    return repo.store.oid_to_path(oid)


def _pointer_oid(path: Path) -> str:
    from merkl.pointer import pointer_path, read_pointer

    return read_pointer(pointer_path(path)).oid


def _git(root: Path, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t")
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, env=env)


def _tracked(repo: Repo, name: str, content: bytes) -> Path:
    """A file `name` with `content`, tracked."""
    path = repo.root / name
    path.write_bytes(content)
    assert run_cli("track", name).code == 0
    return path


def _directory_remote(repo: Repo, tmp_path: Path) -> Path:
    """A directory remote `backup` on the same filesystem, the default one."""
    remote = tmp_path / "backup"
    with open(repo.root / "merkl.toml", "a") as handle:
        handle.write(f'\n[remotes.backup]\nurl = "{remote}"\n')
    return remote


def _edit_in_place(path: Path, extra: bytes) -> None:
    """`echo 2 >> path` as root does it: through the link, into whatever file it reaches."""
    with open(path, "ab") as handle:
        handle.write(extra)


# -- 1. in-place edit through a link ------------------------------------------------------------


@pytest.mark.skipif(not IS_ROOT, reason="only root can write through a 0444 object")
def test_edit_through_symlink_is_never_reported_clean_nor_restored_from_the_edited_object(repo):
    data = _tracked(repo, "data.csv", b"a,b\n1,2\n")
    tracked_oid = _pointer_oid(data)
    _edit_in_place(data, b"3,4\n")

    status = run_cli("status")
    assert "modified" in status.out
    assert "edited in place" in status.out, status.out
    assert "unprotect" in status.out

    forced = run_cli("checkout", "--force", "data.csv")
    assert forced.code == 1, forced.out
    assert "not in the local store" in forced.err
    assert "merkl pull" in forced.err
    assert data.read_bytes() == b"a,b\n1,2\n3,4\n"  # the edit is kept
    assert not repo.store.has(tracked_oid)  # the old address counts as missing
    after = run_cli("status")
    assert "clean" not in after.out.split("\n")[1], after.out
    assert verify(repo).ok


@pytest.mark.skipif(not IS_ROOT, reason="only root can write through a 0444 object")
def test_track_after_edit_through_symlink_keeps_the_edit_and_gc_keeps_it(repo):
    data = _tracked(repo, "data.csv", b"v1\n")
    _edit_in_place(data, b"v2\n")
    again = run_cli("track", "data.csv")
    assert again.code == 0, again.err
    new_oid = _pointer_oid(data)
    assert _obj(repo, new_oid).is_file()
    assert not _obj(repo, new_oid).is_symlink()
    assert data.read_bytes() == b"v1\nv2\n"
    assert run_cli("gc", "--yes").code == 0
    assert data.read_bytes() == b"v1\nv2\n"
    assert "clean" in run_cli("status").out
    assert verify(repo).ok


@pytest.mark.skipif(not IS_ROOT, reason="only root can write through a 0444 object")
def test_verify_repair_quarantines_an_edited_object_instead_of_deleting_it(repo):
    data = _tracked(repo, "data.csv", b"v1\n")
    oid = _pointer_oid(data)
    _edit_in_place(data, b"only copy of this edit\n")
    result = run_cli("verify", "--repair")
    assert result.code == 0, result.err  # everything found was repaired
    assert "quarantine" in result.out + result.err
    kept = list((repo.dot_dir / "quarantine").iterdir())
    assert len(kept) == 1
    assert kept[0].read_bytes() == b"v1\nonly copy of this edit\n"
    assert not repo.store.has(oid)


@pytest.mark.skipif(not IS_ROOT, reason="only root can write through a 0444 object")
def test_edited_member_of_a_tracked_folder_is_rehomed_by_track(repo):
    folder = repo.root / "set"
    folder.mkdir()
    for i in range(5):
        (folder / f"m{i}.txt").write_bytes(f"member {i}\n".encode())
    assert run_cli("track", "set").code == 0
    _edit_in_place(folder / "m2.txt", b"edited\n")
    assert "modified" in run_cli("status").out
    assert run_cli("track", "set").code == 0
    assert run_cli("gc", "--yes").code == 0
    assert (folder / "m2.txt").read_bytes() == b"member 2\nedited\n"
    assert "clean" in run_cli("status").out
    assert verify(repo).ok


def test_unprotect_gives_writable_copies_that_stay_tracked(repo):
    folder = repo.root / "set"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"a\n")
    data = repo.root / "data.csv"
    data.write_bytes(b"d\n")
    assert run_cli("track", "set", "data.csv").code == 0
    result = run_cli("unprotect", "set", "data.csv")
    assert result.code == 0, result.err
    for path in (folder / "a.txt", data):
        assert not path.is_symlink()
        assert os.stat(path).st_nlink == 1
        assert os.stat(path).st_mode & 0o200
    assert "clean" in run_cli("status").out
    _edit_in_place(data, b"more\n")
    oid = _pointer_oid(data)
    assert repo.store.verify(oid)  # the object was not touched


# -- 2. dedup onto a corrupt object -------------------------------------------------------------


def test_track_does_not_deduplicate_onto_a_corrupt_object(repo):
    first = _tracked(repo, "f.bin", b"same content\n")
    oid = _pointer_oid(first)
    assert run_cli("untrack", "f.bin").code == 0  # f.bin is a private copy again
    obj = _obj(repo, oid)
    os.chmod(obj, 0o644)
    obj.write_bytes(b"bit rot\n")  # same name, other bytes
    os.chmod(obj, 0o444)
    second = _tracked(repo, "g.bin", b"same content\n")
    assert second.read_bytes() == b"same content\n"
    assert repo.store.verify(oid)


# -- 3. gc during track (real concurrent processes) ---------------------------------------------


def _write_members(folder: Path, count: int) -> dict[str, bytes]:
    content = {}
    for i in range(count):
        sub = folder / f"part{i // 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        data = f"member {i}\n".encode() * 20
        (sub / f"f{i:04d}.txt").write_bytes(data)
        content[str((sub / f"f{i:04d}.txt").relative_to(folder))] = data
    return content


def _lost(folder: Path, content: dict[str, bytes]) -> list[str]:
    lost = []
    for rel, data in content.items():
        try:
            if (folder / rel).read_bytes() != data:
                lost.append(rel)
        except OSError:
            lost.append(rel)
    return lost


def test_gc_running_during_track_of_a_folder_deletes_nothing(repo):
    content = _write_members(repo.root / "data", 1500)
    env = child_env()
    track = subprocess.Popen(
        [sys.executable, "-m", "merkl", "track", "data"],
        cwd=repo.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    gcs = 0
    while track.poll() is None:
        subprocess.run(
            [sys.executable, "-m", "merkl", "gc", "--yes"],
            cwd=repo.root,
            env=env,
            capture_output=True,
            timeout=120,
        )
        gcs += 1
    _, err = track.communicate()
    assert track.returncode == 0, err
    assert gcs >= 1
    assert _lost(repo.root / "data", content) == []


def test_gc_waits_for_a_shared_holder_and_says_who(repo):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from merkl.repo import Repo\n"
            "from merkl.cache.lock import shared_lock\n"
            "with shared_lock(Repo.find(), 'merkl track data'):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(3)\n",
        ],
        cwd=repo.root,
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    start = time.monotonic()
    result = run_merkl_process("gc", "--yes", cwd=repo.root, env=child_env())
    waited = time.monotonic() - start
    holder.communicate(timeout=30)
    assert result.code == 0, result.err
    assert waited >= 1.5
    assert "merkl track data" in result.err
    assert str(holder.pid) in result.err


# -- 4. kill -9 of track, then gc ---------------------------------------------------------------


def test_kill_9_during_track_then_gc_loses_nothing_and_track_completes(repo):
    content = _write_members(repo.root / "data", 40)
    full_dir = repo.root.parent / "probe"
    shutil.copytree(repo.root, full_dir, symlinks=True)
    probe = crash_at(0, ["track", "data"], full_dir)
    assert probe.exit_code == 0
    point = probe.mutations // 2  # half the members are linked, no pointer yet
    killed = crash_at(point, ["track", "data"], repo.root)
    assert killed.killed
    report = run_cli("verify")
    assert "unfinished" in report.out, report.out
    assert "merkl track data" in report.out, report.out
    assert run_cli("gc", "--yes").code == 0
    assert _lost(repo.root / "data", content) == []
    again = run_cli("track", "data")
    assert again.code == 0, again.err
    assert _lost(repo.root / "data", content) == []
    assert "unfinished" not in run_cli("verify").out
    assert "clean" in run_cli("status").out


def test_kill_9_of_a_real_track_process_then_gc(repo):
    content = _write_members(repo.root / "data", 3000)
    track = subprocess.Popen(
        [sys.executable, "-m", "merkl", "track", "data"], cwd=repo.root, env=child_env()
    )
    deadline = time.monotonic() + 60
    first = repo.root / "data" / "part00" / "f0000.txt"
    while not first.is_symlink() and time.monotonic() < deadline and track.poll() is None:
        time.sleep(0.005)
    os.kill(track.pid, signal.SIGKILL)
    track.wait()
    result = run_merkl_process("gc", "--yes", cwd=repo.root, env=child_env())
    assert result.code == 0, result.err
    assert _lost(repo.root / "data", content) == []


# -- 5. checkout never deletes what is not stored -----------------------------------------------


def test_checkout_keeps_a_user_folder_where_a_member_file_was(repo):
    folder = repo.root / "set"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"a\n")
    (folder / "b.txt").write_bytes(b"b\n")
    assert run_cli("track", "set").code == 0
    (folder / "a.txt").unlink()
    (folder / "a.txt").mkdir()
    (folder / "a.txt" / "mine.txt").write_bytes(b"not stored anywhere\n")
    result = run_cli("checkout", "set")
    assert result.code == 1
    assert (folder / "a.txt" / "mine.txt").read_bytes() == b"not stored anywhere\n"
    assert "set/a.txt" in result.err


def test_checkout_calls_a_new_member_added_not_modified(repo):
    folder = repo.root / "set"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"a\n")
    assert run_cli("track", "set").code == 0
    (folder / "new.txt").write_bytes(b"new\n")
    result = run_cli("checkout", "set")
    assert result.code == 1
    assert "added" in result.err, result.err
    assert "modified" not in result.err, result.err
    assert (folder / "new.txt").read_bytes() == b"new\n"


def test_status_after_git_checkout_of_an_older_pointer_says_run_checkout(repo):
    _git(repo.root, "init", "-q")
    data = _tracked(repo, "data.csv", b"v1\n")
    _git(repo.root, "add", "-A")
    _git(repo.root, "commit", "-qm", "v1")
    data.unlink()
    data.write_bytes(b"v2\n")
    assert run_cli("track", "data.csv").code == 0
    _git(repo.root, "add", "-A")
    _git(repo.root, "commit", "-qm", "v2")
    _git(repo.root, "checkout", "-q", "HEAD~1", "--", "data.csv.merkl")
    out = run_cli("status").out
    assert "another stored version" in out, out
    assert "merkl checkout" in out, out
    assert "merkl track" not in out


# -- 6. in-folder symlink alias sorting before its target ---------------------------------------


@pytest.mark.parametrize("alias", ["best.pt", "z_best.pt"])
def test_track_folder_with_an_in_folder_symlink_alias(repo, alias):
    folder = repo.root / "ck"
    folder.mkdir()
    (folder / "epoch_10.pt").write_bytes(b"weights 10\n")
    (folder / alias).symlink_to("epoch_10.pt")
    result = run_cli("track", "ck")
    assert result.code == 0, result.err
    assert (folder / "epoch_10.pt").read_bytes() == b"weights 10\n"
    assert (folder / alias).read_bytes() == b"weights 10\n"
    assert run_cli("gc", "--yes").code == 0
    assert (folder / alias).read_bytes() == b"weights 10\n"
    for oid in repo.store.iter_oids():
        assert not _obj(repo, oid).is_symlink()
    assert "clean" in run_cli("status").out


# -- 7. a file git already tracks ---------------------------------------------------------------


@pytest.mark.parametrize("index_version", ["2", "4"])
def test_track_refuses_a_file_git_tracks(repo, index_version):
    _git(repo.root, "init", "-q")
    data = repo.root / "data.csv"
    data.write_bytes(b"x\n")
    _git(repo.root, "add", "data.csv")
    _git(repo.root, "update-index", "--index-version", index_version)
    result = run_cli("track", "data.csv")
    assert result.code == 1
    assert "git rm --cached data.csv" in result.err
    assert "Traceback" not in result.err
    assert not data.is_symlink()
    assert not (repo.root / "data.csv.merkl").exists()


# -- 8. gc keeps HEAD's data and prompts; hard links; undecodable names -------------------------


def test_gc_keeps_the_object_heads_pointer_names_after_a_retrack(repo):
    _git(repo.root, "init", "-q")
    data = _tracked(repo, "data.csv", b"committed version\n")
    committed = _pointer_oid(data)
    _git(repo.root, "add", "-A")
    _git(repo.root, "commit", "-qm", "v1")
    data.unlink()
    data.write_bytes(b"work in progress\n")
    assert run_cli("track", "data.csv").code == 0
    assert run_cli("gc", "--yes").code == 0
    assert repo.store.has(committed)


def test_gc_on_a_terminal_asks_before_deleting(repo):
    import pty

    data = _tracked(repo, "x.bin", b"x\n")
    oid = _pointer_oid(data)
    assert run_cli("untrack", "x.bin").code == 0
    pid, fd = pty.fork()
    if pid == 0:  # child: a merkl gc on a terminal
        os.chdir(repo.root)
        os.execve(sys.executable, [sys.executable, "-m", "merkl", "gc"], child_env())
    output = b""
    os.write(fd, b"n\n")
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.waitpid(pid, 0)
    assert b"delete" in output.lower(), output
    assert repo.store.has(oid)


def test_track_copies_a_file_with_other_hard_links(repo, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"shared inode\n")
    os.chmod(outside, 0o644)
    inside = repo.root / "data.bin"
    os.link(outside, inside)
    assert run_cli("track", "data.bin").code == 0
    assert os.stat(outside).st_mode & 0o777 == 0o644
    oid = _pointer_oid(inside)
    assert os.stat(_obj(repo, oid)).st_ino != os.stat(outside).st_ino
    outside.write_bytes(b"changed outside\n")
    assert repo.store.verify(oid)


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses non-UTF-8 names")
def test_track_names_an_undecodable_file_name_in_one_line(repo):
    folder = repo.root / "set"
    folder.mkdir()
    (folder / "ok.txt").write_bytes(b"ok\n")
    with open(os.path.join(os.fsencode(folder), b"bad\xff.csv"), "wb") as handle:
        handle.write(b"x\n")
    result = run_cli("track", "set")
    assert result.code == 1
    assert "bad" in result.err, result.err
    assert "UTF-8" in result.err, result.err
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (folder / "ok.txt").is_symlink()


# -- 9. directory remotes copy ------------------------------------------------------------------


def test_directory_remote_never_shares_an_inode_with_the_local_store(repo, tmp_path):
    remote = _directory_remote(repo, tmp_path)
    data = _tracked(repo, "data.csv", b"precious\n")
    assert run_cli("push").code == 0
    oid = _pointer_oid(data)
    local = os.stat(_obj(repo, oid))
    copies = [p for p in remote.rglob("*") if p.is_file() and os.stat(p).st_ino == local.st_ino]
    assert copies == []


# -- as an ordinary user ------------------------------------------------------------------------


@pytest.mark.skipif(not IS_ROOT or shutil.which("setpriv") is None, reason="needs root + setpriv")
def test_non_root_user_cannot_edit_through_the_link_and_status_stays_clean():
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="merkl-nobody-"))  # pytest's tmp_path is root-only
    try:
        os.chmod(work, 0o755)
        shutil.chown(work, "nobody", "nogroup")
        _as_nobody(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _as_nobody(work: Path) -> None:
    script = (
        "import os, subprocess, sys\n"
        "def merkl(*a):\n"
        "    return subprocess.run([sys.executable, '-m', 'merkl', *a], capture_output=True,"
        " text=True)\n"
        "assert merkl('init').returncode == 0\n"
        "open('data.csv', 'w').write('v1\\n')\n"
        "assert merkl('track', 'data.csv').returncode == 0\n"
        "try:\n"
        "    open('data.csv', 'a').write('v2\\n')\n"
        "    print('edited')\n"
        "except PermissionError:\n"
        "    print('refused')\n"
        "print(merkl('status').stdout)\n"
        "r = merkl('unprotect', 'data.csv')\n"
        "assert r.returncode == 0, r.stderr\n"
        "open('data.csv', 'a').write('v2\\n')\n"
        "print(merkl('status').stdout)\n"
    )
    # The venv's interpreter may live in root's home; the system one of the same version can
    # run merkl from the venv's packages.
    python = f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
    if not os.access(python, os.X_OK):
        pytest.skip(f"no {python} an ordinary user can run")
    import merkl

    paths = [str(Path(merkl.__file__).parents[1]), sysconfig.get_paths()["purelib"]]
    env = child_env() | {"HOME": str(work), "PYTHONPATH": os.pathsep.join(paths)}
    proc = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", python, "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "refused" in proc.stdout, proc.stdout
    second = proc.stdout.partition("refused")[2]
    assert "clean" in second.split("\n\n")[0], proc.stdout
    assert "modified" in second, proc.stdout


@pytest.mark.skipif(not IS_ROOT, reason="only root can write through a 0444 object")
def test_push_never_sends_an_object_edited_in_place(repo, tmp_path):
    remote = _directory_remote(repo, tmp_path)
    data = _tracked(repo, "data.csv", b"v1\n")
    _edit_in_place(data, b"edit\n")
    result = run_cli("push")
    assert result.code == 1
    assert "changed in place" in result.err
    assert not [p for p in remote.rglob("*") if p.is_file() and p.parent.name != "tmp"]


@pytest.mark.skipif(not IS_ROOT, reason="only root can write through a 0444 object")
def test_pull_fetches_the_tracked_version_of_an_edited_object_and_keeps_the_edit(repo, tmp_path):
    _directory_remote(repo, tmp_path)
    data = _tracked(repo, "data.csv", b"v1\n")
    oid = _pointer_oid(data)
    assert run_cli("push").code == 0
    _edit_in_place(data, b"edit\n")
    pulled = run_cli("pull")
    assert pulled.code == 0, pulled.err
    assert "locally changed" in pulled.out  # not overwritten without --force
    assert repo.store.verify(oid)  # the tracked version is back in the store
    assert data.read_bytes() == b"v1\nedit\n"  # the edit is still where it was
    assert run_cli("track", "data.csv").code == 0
    assert run_cli("gc", "--yes").code == 0
    assert data.read_bytes() == b"v1\nedit\n"


def test_lock_held_by_threads_and_nested_is_released_by_the_last_one_out(repo):
    import threading

    from merkl.cache.lock import exclusive_lock, shared_lock

    inside = threading.Barrier(4)

    def hold() -> None:
        with shared_lock(repo, "a"), shared_lock(repo, "nested"):
            inside.wait(timeout=10)

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    def must_not_wait(holders: str) -> None:
        raise AssertionError(f"the lock leaked: held by {holders}")

    with exclusive_lock(repo, "gc", on_wait=must_not_wait):
        pass
    assert not list((repo.dot_dir / "locks").iterdir())
