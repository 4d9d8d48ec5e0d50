"""Crash safety of `merkl push` and `merkl pull` (directory remote): SIGKILL at every
file-system mutation; afterwards both sides verify clean and a second attempt completes."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

from merkl.ops.verify import verify
from merkl.repo import Repo
from tests.helpers import run_cli, write_module
from tests.reliability.crashpoint import crash_at

PIPELINE = """
    from merkl import task

    @task
    def table(n):
        return [[i, i * i] for i in range(n)]

    def pipeline(n: int):
        return table(n)
"""


def _source(tmp_path: Path) -> tuple[Repo, dict[str, bytes]]:
    """A repo with a tracked file, a tracked folder and a cached output, and its remote."""
    source = Repo.init(tmp_path / "source")
    rng = random.Random(11)
    content = {"big.bin": rng.randbytes(300_000)}
    content.update({f"set/f{i}.txt": rng.randbytes(2_000) for i in range(4)})
    for rel, data in content.items():
        (source.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (source.root / rel).write_bytes(data)
    write_module(source.root, "remotepipe", PIPELINE)
    os.chdir(source.root)
    assert run_cli("remote", "add", "origin", str(tmp_path / "remote"), "--default").code == 0
    assert run_cli("track", "big.bin", "set").code == 0
    assert run_cli("run", "remotepipe.pipeline", "50").code == 0
    return source, content


def _remote_is_sound(remote: Path) -> None:
    """Every object in the remote folder is whole, every output record complete JSON."""
    import orjson

    from merkl.hashing import hash_bytes, is_hex_hash

    for path in (remote / "objects").rglob("*"):
        name = path.parent.name + path.name
        if path.is_file() and is_hex_hash(name):
            assert hash_bytes(path.read_bytes()) == name, path
    for path in (remote / "outputs").rglob("*"):
        if path.is_file() and is_hex_hash(path.parent.name + path.name):
            assert isinstance(orjson.loads(path.read_bytes()), dict), path


def test_crash_at_every_mutation_point_of_push(tmp_path):
    source, _ = _source(tmp_path)
    remote = tmp_path / "remote"
    full = crash_at(0, ["push"], source.root)
    assert full.exit_code == 0, full.stderr
    for point in range(1, full.mutations + 1):
        shutil.rmtree(remote, ignore_errors=True)
        assert crash_at(point, ["push"], source.root).killed, point
        _remote_is_sound(remote)
        assert verify(source).ok
        again = run_cli("push")
        assert again.code == 0, (point, again.err)
        _remote_is_sound(remote)
    print(f"\ncrash points in merkl push: {full.mutations}, all recovered")


def test_crash_at_every_mutation_point_of_pull(tmp_path):
    source, content = _source(tmp_path)
    assert run_cli("push").code == 0
    clone = tmp_path / "clone"

    def fresh() -> Repo:
        shutil.rmtree(clone, ignore_errors=True)
        repo = Repo.init(clone)
        for pointer in ("big.bin.merkl", "set.merkl"):
            shutil.copy(source.root / pointer, clone / pointer)
        shutil.copy(source.root / "merkl.toml", clone / "merkl.toml")
        return repo

    fresh()
    full = crash_at(0, ["pull"], clone)
    assert full.exit_code == 0, full.stderr
    for point in range(1, full.mutations + 1):
        repo = fresh()
        assert crash_at(point, ["pull"], clone).killed, point
        report = verify(repo)
        assert report.ok, (point, [f for f in report.findings if f.is_error])
        for rel, data in content.items():  # a file is either absent or whole
            path = clone / rel
            if path.exists():
                assert path.read_bytes() == data, (point, rel)
        os.chdir(clone)
        again = run_cli("pull")
        assert again.code == 0, (point, again.err)
        for rel, data in content.items():
            assert (clone / rel).read_bytes() == data, (point, rel)
        assert verify(repo).ok
    print(f"\ncrash points in merkl pull: {full.mutations}, all recovered")
