"""Bounded local caches: `[cache] max_size`/`max_age` evict least recently used outputs after
`merkl run`, never tracked data or pinned outputs; `merkl cache size` and `cache clear --task`."""

from __future__ import annotations

import sys
import time

from tests.helpers import import_fresh, run_cli, write_module

from merkl.cache.index import Index
from merkl.ops import evict
from merkl.repo import Repo
from merkl.session import Session, use_session

TASKS = """
    from merkl import task, write_file

    @task
    def blob(n):
        return "x" * 1000 + str(n)

    @task
    def other(n):
        return "y" * 1000 + str(n)

    def one(n: int):
        return blob(n)

    def pinned(n: int):
        out = blob(n)
        write_file(out, "pinned.json", track=True)
        return out

    def both(n: int):
        return other(n)
"""


def run(*args: str) -> str:
    sys.modules.pop("tasks", None)
    result = run_cli("run", *args)
    assert result.code == 0, result.err
    return result.err


def cached(repo: Repo) -> int:
    return sum(1 for _ in Repo(repo.root).index.iter_outputs())


def ran(err: str) -> int:
    return int(err.split("merkl: ", 1)[1].split(" task(s) run")[0])


def test_max_size_evicts_the_least_recently_used_output(repo):
    write_module(repo.root, "tasks", TASKS)
    (repo.root / "merkl.toml").write_text('[cache]\nmax_size = "2500B"\n')
    run("tasks.one", "1")
    run("tasks.one", "2")
    time.sleep(0.01)
    assert ran(run("tasks.one", "1")) == 0  # a hit: output 1 is now the most recently used
    run("tasks.one", "3")  # over 2,500 bytes: output 2 (least recently used) goes
    assert cached(repo) == 2
    assert ran(run("tasks.one", "1")) == 0
    assert ran(run("tasks.one", "3")) == 0
    assert ran(run("tasks.one", "2")) == 1  # evicted: computed again


def test_pinned_outputs_and_tracked_data_are_never_evicted(repo):
    write_module(repo.root, "tasks", TASKS)
    run("tasks.pinned", "7")
    (repo.root / "data.txt").write_text('"' + "y" * 1000 + '5"')  # other(5), as JSON
    assert run_cli("track", "data.txt").code == 0
    run("tasks.both", "5")
    (repo.root / "merkl.toml").write_text('[cache]\nmax_size = "0B"\n')
    run("tasks.both", "6")  # every output over the limit: only unprotected ones go
    assert (repo.root / "pinned.json").read_text().startswith('"x')
    assert (repo.root / "data.txt").read_text().startswith('"y')
    assert ran(run("tasks.pinned", "7")) == 0  # pinned output still cached
    assert ran(run("tasks.both", "5")) == 0  # its object is tracked data: kept
    assert ran(run("tasks.both", "6")) == 1  # nothing protects this one: evicted
    assert run_cli("status").code == 0


def test_max_age_drops_outputs_unused_that_long(repo):
    write_module(repo.root, "tasks", TASKS)
    run("tasks.one", "1")
    time.sleep(1.1)
    (repo.root / "merkl.toml").write_text('[cache]\nmax_age = "1s"\n')
    run("tasks.one", "2")
    assert ran(run("tasks.one", "2")) == 0
    assert ran(run("tasks.one", "1")) == 1


def test_cache_size_and_clear_by_task(repo):
    write_module(repo.root, "tasks", TASKS)
    run("tasks.one", "1")
    run("tasks.one", "2")
    run("tasks.both", "1")
    size = run_cli("cache", "size")
    assert size.code == 0, size.err
    assert "tasks.blob" in size.out
    assert "3 output(s)  total" in size.out
    cleared = run_cli("cache", "clear", "--task", "tasks.blob")
    assert cleared.code == 0, cleared.err
    assert "dropped 2 cached output(s) of tasks.blob" in cleared.out
    assert ran(run("tasks.both", "1")) == 0
    assert ran(run("tasks.one", "1")) == 1
    bad = run_cli("cache", "clear", "--task", "tasks.nope")
    assert bad.code == 2
    assert "tasks.nope" in bad.err


def test_a_bad_limit_is_one_clear_error(repo):
    write_module(repo.root, "tasks", TASKS)
    (repo.root / "merkl.toml").write_text('[cache]\nmax_size = "lots"\n')
    result = run_cli("run", "tasks.one", "1")
    assert result.code == 2
    assert "[cache] max_size" in result.err


def test_library_evaluations_check_the_limits_only_when_they_computed(repo, monkeypatch):
    write_module(repo.root, "tasks", TASKS)
    (repo.root / "merkl.toml").write_text('[cache]\nmax_size = "2500B"\n')
    tasks = import_fresh(repo.root, "tasks")
    monkeypatch.setattr(evict, "CHECK_SECONDS", 0.0)
    sums: list[int] = []
    real = Index.outputs_size
    monkeypatch.setattr(Index, "outputs_size", lambda self: sums.append(1) or real(self))
    with use_session(Session(Repo(repo.root))):
        tasks.one(1).get()
        tasks.one(2).get()
        assert len(sums) == 2  # under the limit: one SUM each, no eviction
        time.sleep(0.01)
        tasks.one(2).get()
        tasks.one(2).get()
        assert len(sums) == 2  # cache hits check nothing (their use is written at the next check)
        tasks.one(3).get()  # past the limit: blob(1), least recently used, goes
    assert cached(repo) == 2
    assert {e.out_hash for e in Repo(repo.root).index.iter_outputs()} == {
        tasks.one(2).hash,
        tasks.one(3).hash,
    }
