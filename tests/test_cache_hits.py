"""The cache-hit path of `.get()`: binding, lookup without a stat, one-read objects, sessions."""

from __future__ import annotations

import inspect
import os

import pytest

from merkl import task
from merkl.cache.store import ObjectStore
from merkl.errors import CorruptObjectError
from merkl.hashing import hash_bytes
from merkl.repo import Repo
from merkl.session import current_session
from tests.helpers import import_fresh, write_module

CALLS: list[int] = []


@task
def scaled(x, factor=2, offset=0):
    CALLS.append(x)
    return x * factor + offset


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


def _cache():
    return current_session().require_repo().cache


def test_keyword_calls_hash_like_positional_ones(repo):
    expected = scaled(3, 2, 0).hash
    for out in (scaled(3), scaled(x=3), scaled(3, factor=2), scaled(offset=0, x=3)):
        assert out.hash == expected
    assert scaled(3, offset=1).hash == scaled(3, 2, 1).hash != expected
    assert scaled(3, offset=1).get() == 7


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1,), {"y": 2}), ((1,), {"x": 2}), ((1, 2, 3, 4), {}), ((), {"factor": 1})],
)
def test_keyword_binding_errors_are_inspects(repo, args, kwargs):
    with pytest.raises(TypeError) as expected:
        inspect.signature(scaled.fn).bind(*args, **kwargs)
    with pytest.raises(TypeError, match="scaled\\(\\): ") as raised:
        scaled(*args, **kwargs)
    assert str(raised.value) == f"scaled(): {expected.value}"


def test_hit_of_an_indexed_output_whose_object_is_gone_recomputes(repo):
    out = scaled(5)
    assert out.get() == 10
    cache = _cache()
    entry = cache.index.find_output(out.hash)
    cache.store.remove(entry.oid)  # the row stays: the hit path does not stat the object
    for memoized in (True, False):  # a hit earlier in this process, or a fresh process
        if not memoized:
            cache.store.remove(entry.oid)
            cache._entries.clear()
        CALLS.clear()
        assert scaled(5).get() == 10
        assert CALLS == [5]
        assert cache.store.has(entry.oid)


def test_hit_records_last_use(repo):
    out = scaled(6)
    out.get()
    cache = _cache()
    cache.flush_use()
    cache._entries.clear()
    assert scaled(6).get() == 12
    assert out.hash in cache.used
    cache.flush_use()
    assert dict(cache.index._read("SELECT out_hash, 1 FROM output_use")) == {out.hash: 1}


def test_object_read_with_its_recorded_size(tmp_path):
    store = ObjectStore(tmp_path / "objects", tmp_path / "tmp", fsync=False)
    data = b'{"value": 12345}'
    oid = store.put_bytes(data)
    for size in (len(data), len(data) - 1, len(data) + 5, 0):  # a wrong size: read to the end
        assert store.get_bytes(oid, size=size) == data
    path = store.oid_to_path(oid)
    path.chmod(0o644)
    path.write_bytes(data + b" ")  # one byte more than the index records
    with pytest.raises(CorruptObjectError):
        store.get_bytes(oid, size=len(data))
    assert not path.exists()  # quarantined
    big = os.urandom(3 << 20)  # over one read's chunk
    big_oid = store.put_bytes(big)
    assert store.get_bytes(big_oid, size=len(big)) == big
    assert hash_bytes(store.get_bytes(big_oid, size=10)) == big_oid


def test_default_session_follows_merkl_repo(repo, tmp_path, monkeypatch):
    other = Repo.init(tmp_path / "other")
    assert current_session().require_repo().root == repo.root
    monkeypatch.setenv("MERKL_REPO", str(other.root))
    assert current_session().require_repo().root == other.root
    monkeypatch.delenv("MERKL_REPO")
    assert current_session().require_repo().root == repo.root


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_looks_outputs_up_on_its_own_connection(repo):
    out = scaled(7)
    out.get()
    index = _cache().index
    parent_connection = index._connection()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        found = index.find_output(out.hash)
        own = index._local.conn is not parent_connection  # the one it used
        os.write(write, b"ok" if found is not None and own else b"bad")
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 10) == b"ok"
    assert index._connection() is parent_connection


def test_code_change_changes_the_hit(repo, tmp_path):
    """A task redefined with other code hashes (and so hits) differently in the same
    process: nothing on the hit path remembers a hash across code versions."""
    folder = tmp_path / "mods"
    folder.mkdir()
    write_module(folder, "hit_mod", "from merkl import task\n\n@task\ndef f(x):\n    return x\n")
    first = import_fresh(folder, "hit_mod").f
    assert first(1).get() == 1
    write_module(folder, "hit_mod", "from merkl import task\n\n@task\ndef f(x):\n    return -x\n")
    second = import_fresh(folder, "hit_mod").f
    assert second(1).hash != first(1).hash
    assert second(1).get() == -1
    assert first(1).get() == 1
