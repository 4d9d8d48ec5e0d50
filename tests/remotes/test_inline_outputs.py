"""Tiny task outputs, kept inline in the index, pushed to and pulled from each kind of remote:
the remote stores them as ordinary objects; the pulling cache keeps them inline again."""

from __future__ import annotations

from pathlib import Path

import pytest

from merkl.cache.store import INLINE_MAX
from merkl.evaluation import EvalStats, evaluate
from merkl.ops.pull import pull
from merkl.ops.push import push
from merkl.ops.verify import verify
from merkl.repo import Repo
from merkl.session import use_session
from tests.helpers import damage_object, import_fresh, run_cli, write_module
from tests.remotes.conftest import REDIS_URL
from tests.test_inline_outputs import TASKS, blob_rows


def _remote_settings(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "directory":
        (tmp_path / "remote").mkdir()
        return f'url = "{tmp_path / "remote"}"\n'
    if kind == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        return f'url = "s3://{bucket}/p"\n'
    prefix = request.getfixturevalue("redis_prefix")
    return f'url = "{REDIS_URL}"\nprefix = "{prefix}"\n'


@pytest.mark.parametrize("kind", ["directory", "s3", "redis"])
def test_push_and_pull_inline_outputs(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if kind == "s3":
        request.getfixturevalue("s3_env")
    settings = _remote_settings(kind, tmp_path, request)
    repos = []
    for name in ("a", "b"):
        repo = Repo.init(tmp_path / name)
        with open(repo.root / "merkl.toml", "a") as handle:
            handle.write(f"\n[remotes.origin]\n{settings}")
        write_module(repo.root, "tiny", TASKS)
        repos.append(repo)
    first, second = repos
    tiny = import_fresh(first.root, "tiny")
    outs = [tiny.add_one(i) for i in range(20)] + [tiny.sized(INLINE_MAX)]
    with use_session(repo=first):
        evaluate(outs)
    monkeypatch.chdir(first.root)
    before = run_cli("status", "--remote", "origin")
    assert "lacks 0 tracked file(s) and 21 cached output(s)" in before.out, before.err
    report = push(first, "origin")
    report.raise_for_failures()
    assert len(report.outputs.transferred) == 21
    assert len(report.objects.transferred) == 21
    after = run_cli("status", "--remote", "origin")
    assert "lacks 0 tracked file(s) and 0 cached output(s)" in after.out, after.err

    pulled = pull(second, "origin")
    pulled.raise_for_failures()
    assert pulled.outputs == 21
    assert len(list(second.store.iter_oids())) == 1  # the large one; the 20 small ones inline
    assert blob_rows(second) == 20
    tiny.CALLS.clear()
    stats = EvalStats()
    with use_session(repo=second):
        assert evaluate(outs, stats=stats)[:3] == [1, 2, 3]
    assert (stats.ran, tiny.CALLS) == (0, [])
    assert verify(second).findings == []


def test_a_corrupt_inline_object_is_not_pushed(tmp_path: Path) -> None:
    repo = Repo.init(tmp_path / "a")
    (tmp_path / "remote").mkdir()
    with open(repo.root / "merkl.toml", "a") as handle:
        handle.write(f'\n[remotes.origin]\nurl = "{tmp_path / "remote"}"\n')
    write_module(repo.root, "tiny", TASKS)
    tiny = import_fresh(repo.root, "tiny")
    with use_session(repo=repo):
        evaluate([tiny.add_one(1), tiny.add_one(2)])
    bad = repo.index.find_output(tiny.add_one(2).hash).oid
    damage_object(repo, bad)
    report = push(repo, "origin")
    assert len(report.objects.transferred) == 1
    [reason] = report.objects.failed.values()
    assert "the local copy is corrupt" in reason
    assert not (tmp_path / "remote" / "objects" / bad[:2] / bad[2:]).exists()
