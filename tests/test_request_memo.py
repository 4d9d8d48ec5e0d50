"""`merkl.request_memo` in-process: what invalidates an entry besides files (tested through
`merkl serve` in tests/serve/test_request_memo.py), keys, bounds and the off switch."""

from __future__ import annotations

import sys

import pytest

import merkl
from merkl.deps import register_interactive
from merkl.repo import Repo
from merkl.request_memo import MEMO_ENV, RequestMemo, arguments_key, recording
from merkl.session import Session, use_session
from tests.test_interactive_code import Cells


def build(memo: RequestMemo, key: str, function, *args):
    """`function(*args)` built while recording, then remembered under `key`."""
    with recording() as reads:
        result = function(*args)
    memo.put(key, function, reads, [result], result.hash)
    return result


def test_a_task_whose_code_hash_changed_is_not_answered_from_the_memo():
    cells = Cells("merkl_memo_cells")
    try:
        cells.run("from merkl import task\n\ndef helper(x):\n    return x + 1\n")
        cells.run("@task\ndef f(x):\n    return helper(x)\n\ndef pipe(x):\n    return f(x)\n")
        pipe = cells.module.pipe
        memo = RequestMemo(enabled=True)
        first = build(memo, "k", pipe, 1)
        assert memo.get("k", pipe) == first.hash
        cells.run("def helper(x):\n    return x + 2\n")  # a notebook cell redefines the helper
        assert memo.get("k", pipe) is None
        assert len(memo) == 0  # dropped
        assert build(memo, "k", pipe, 1).hash != first.hash
    finally:
        register_interactive("merkl_memo_cells", None)
        del sys.modules["merkl_memo_cells"]


def test_another_function_object_is_a_miss(tmp_path):
    memo = RequestMemo(enabled=True)

    @merkl.task(version="1")
    def double(x):
        return 2 * x

    def pipe(x):
        return double(x)

    def reloaded(x):  # what importing the module again makes of `pipe`
        return double(x)

    build(memo, "k", pipe, 3)
    assert memo.get("k", pipe) is not None
    assert memo.get("k", reloaded) is None


def test_keys_are_canonical_arguments():
    keys = {arguments_key([2], {}), arguments_key([2.0], {}), arguments_key([True], {})}
    assert len(keys) == 3
    assert arguments_key([1], {"a": [1, 2]}) == arguments_key([1], {"a": [1, 2]})
    assert arguments_key([1], {"a": (1, 2)}) != arguments_key([1], {"a": [1, 2]})
    assert arguments_key([object()], {}) is None  # no canonical encoding: not memoized


def test_least_recently_used_entries_leave_first():
    memo = RequestMemo(max_entries=2, enabled=True)

    @merkl.task(version="1")
    def one(x):
        return x

    def pipe(x):
        return one(x)

    for key in ("a", "b"):
        build(memo, key, pipe, key)
    assert memo.get("a", pipe) is not None  # "a" used last: "b" goes first
    build(memo, "c", pipe, "c")
    assert memo.get("b", pipe) is None
    assert memo.get("a", pipe) is not None
    assert memo.get("c", pipe) is not None


def test_a_folder_input_is_never_memoized(repo: Repo):
    (repo.root / "folder").mkdir()
    (repo.root / "folder" / "a.txt").write_text("a")
    memo = RequestMemo(enabled=True)

    @merkl.task(version="1")
    def listing(folder):
        return sorted(p.name for p in folder.iterdir())

    def pipe(name):
        return listing(merkl.path(name))

    with use_session(Session(repo)):
        build(memo, "k", pipe, "folder")
    assert memo.get("k", pipe) is None


@pytest.mark.parametrize(("value", "enabled"), [("0", False), ("off", False), ("1", True)])
def test_the_environment_turns_memos_off(monkeypatch, value, enabled):
    monkeypatch.setenv(MEMO_ENV, value)
    assert RequestMemo().enabled is enabled
    assert RequestMemo(enabled=True).enabled is True
