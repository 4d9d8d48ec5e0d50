"""The contract every remote kind passes (cf. fsspec's abstract tests, dvc's `TestRemote`).

A backend's test module subclasses `RemoteContract` and provides a `remote_spec` fixture:
`(url, options)` for a fresh, isolated, real remote. The suite covers the four primitives, the
derived push/pull/status/output records, resuming an interrupted push, refusing tampered objects,
and a full round trip through the CLI: clone → push → fresh clone → pull → `merkl run` runs no
task body.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

import pytest

from merkl.cache.index import OutputEntry
from merkl.cache.store import ObjectStore
from merkl.errors import CacheMissError, RemoteError, TransferError
from merkl.hashing import hash_bytes
from merkl.remotes import open_remote
from merkl.remotes.base import Remote
from merkl.remotes.records import Record, object_key, record_key
from merkl.remotes.signing import TrustedKeys, generate_signer
from merkl.remotes.trust import RecordPolicy
from tests.helpers import run_cli, run_merkl_process, write_module

PIPELINE = """
    import os
    from merkl import read_file, task

    def _log(name):
        with open(os.environ["MERKL_TEST_CALLS"], "a") as handle:
            handle.write(name + "\\n")

    @task
    def count_lines(data):
        _log("count_lines")
        return data.count(b"\\n")

    @task
    def double(n):
        _log("double")
        return 2 * n

    def pipeline(data: str):
        return double(count_lines(read_file(data)))
"""


def _option_args(options: dict[str, Any]) -> list[str]:
    return [f"{key}={value}" for key, value in options.items()]


def losing_connection_after(count: int, put: Any, sent: list[str]) -> Any:
    """A `put` that stores `count` keys (recorded in `sent`), then loses its connection."""

    def flaky_put(items: Any) -> None:
        for item in items:
            if len(sent) >= count:
                raise ConnectionResetError("connection lost (injected)")
            put([item])
            sent.append(item[0])

    return flaky_put


def make_store(folder: Path) -> ObjectStore:
    return ObjectStore(folder / "objects", folder / "tmp")


def fill(store: ObjectStore, count: int, size: int = 1000) -> list[str]:
    return [store.put_bytes(os.urandom(size) + i.to_bytes(4, "big")) for i in range(count)]


class RemoteContract:
    """Tests shared by every kind of remote."""

    #: Size of an object that exercises the backend's large-object path (chunks, multipart).
    big_size: ClassVar[int] = 300_000
    #: How many copies a push makes (one per tier).
    copies: ClassVar[int] = 1

    @pytest.fixture
    def remote_spec(self) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError("a backend's test class provides (url, options)")

    @pytest.fixture
    def extra_remotes(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(name, url, options) of remotes the spec's URL refers to (tiers)."""
        return []

    @pytest.fixture
    def remote(self, remote_spec: tuple[str, dict[str, Any]]) -> Remote:
        url, options = remote_spec
        remote = open_remote(url, name="test", options=options)
        remote.prepare(write=True)
        yield remote
        remote.close()

    @pytest.fixture
    def store(self, tmp_path: Path) -> ObjectStore:
        return make_store(tmp_path / "local")

    @pytest.fixture
    def other_store(self, tmp_path: Path) -> ObjectStore:
        return make_store(tmp_path / "other")

    # -- primitives -------------------------------------------------------------------------
    def test_empty_remote_has_nothing(self, remote: Remote) -> None:
        assert remote.has([object_key("ab" * 32)]) == set()
        assert list(remote.list("objects/")) == []

    def test_put_get_bytes(self, remote: Remote, tmp_path: Path) -> None:
        key = object_key(hash_bytes(b"hello"))
        remote.put([(key, b"hello"), (record_key("cd" * 32), b"{}")])
        assert remote.has([key, object_key("ef" * 32)]) == {key}
        dest = tmp_path / "out"
        remote.get([(key, dest)])
        assert dest.read_bytes() == b"hello"

    def test_put_get_large_file(self, remote: Remote, tmp_path: Path) -> None:
        data = os.urandom(self.big_size)
        source = tmp_path / "big"
        source.write_bytes(data)
        key = object_key(hash_bytes(data))
        remote.put([(key, source)])
        dest = tmp_path / "back"
        remote.get([(key, dest)])
        assert dest.read_bytes() == data

    def test_empty_blob(self, remote: Remote, tmp_path: Path) -> None:
        key = object_key(hash_bytes(b""))
        remote.put([(key, b"")])
        remote.get([(key, tmp_path / "empty")])
        assert (tmp_path / "empty").read_bytes() == b""

    def test_delete_small_and_large_keys(self, remote: Remote, tmp_path: Path) -> None:
        if not remote.supports_gc:  # documented: no gc --remote for this kind
            with pytest.raises(RemoteError, match="cannot delete"):
                remote.delete([object_key("c" * 64)])
            return
        big = tmp_path / "big"
        big.write_bytes(os.urandom(self.big_size))
        keys = [object_key(hash_bytes(b"a")), object_key(hash_bytes(b"b")), object_key("c" * 64)]
        remote.put([(keys[0], b"a"), (keys[1], b"b"), (keys[2], big)])
        remote.delete([keys[0], keys[2], object_key("d" * 64)])  # a missing key is no error
        assert remote.has(keys) == {keys[1]}
        assert set(remote.list("objects/")) == {keys[1]}

    def test_list_by_prefix(self, remote: Remote) -> None:
        objects = [object_key(hash_bytes(bytes([i]))) for i in range(3)]
        remote.put([(k, b"x") for k in objects] + [(record_key("ab" * 32), b"{}")])
        assert sorted(remote.list("objects/")) == sorted(objects)
        assert list(remote.list("outputs/")) == [record_key("ab" * 32)]

    def test_get_missing_raises_cache_miss(self, remote: Remote, tmp_path: Path) -> None:
        key = object_key("ab" * 32)
        with pytest.raises(CacheMissError) as info:
            remote.get([(key, tmp_path / "nope")])
        assert isinstance(info.value, KeyError)
        assert info.value.key == key

    def test_put_replaces(self, remote: Remote, tmp_path: Path) -> None:
        key = object_key("ab" * 32)
        remote.put([(key, b"first")])
        remote.put([(key, b"second")])
        remote.get([(key, tmp_path / "out")])
        assert (tmp_path / "out").read_bytes() == b"second"

    # -- derived operations -----------------------------------------------------------------
    def test_push_pull_status(
        self, remote: Remote, store: ObjectStore, other_store: ObjectStore, tmp_path: Path
    ) -> None:
        big = tmp_path / "big"
        big.write_bytes(os.urandom(self.big_size))
        oids = [*fill(store, 20), store.put_bytes(big.read_bytes())]
        pushed = remote.push(store, oids, jobs=4)
        assert sorted(pushed.transferred) == sorted(object_key(o) for o in oids)
        assert not pushed.failed
        assert pushed.nbytes == self.copies * sum(store.size(o) for o in oids)
        assert remote.status(oids) == (set(oids), set())
        pulled = remote.pull(other_store, oids, jobs=4)
        assert not pulled.failed
        assert len(pulled.transferred) == len(oids)
        for oid in oids:
            assert other_store.get_bytes(oid) == store.get_bytes(oid)
        assert not list(other_store.tmp_dir.iterdir())  # no temporary leftovers

    def test_push_skips_what_the_remote_has(self, remote: Remote, store: ObjectStore) -> None:
        oids = fill(store, 5)
        remote.push(store, oids[:2])
        again = remote.push(store, oids)
        assert again.skipped == 2
        assert len(again.transferred) == 3

    def test_status_reports_missing(self, remote: Remote, store: ObjectStore) -> None:
        oids = fill(store, 3)
        remote.push(store, oids[:1])
        assert remote.status(oids) == ({oids[0]}, set(oids[1:]))

    def test_pull_of_absent_object_fails_cleanly(
        self, remote: Remote, other_store: ObjectStore
    ) -> None:
        result = remote.pull(other_store, ["ab" * 32])
        assert list(result.failed) == [object_key("ab" * 32)]
        with pytest.raises(TransferError, match="object abababababab"):
            result.raise_for_failures("pull from", remote.label)

    def test_interrupted_push_resumes(
        self, remote: Remote, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        oids = fill(store, 12)
        keys = {object_key(o) for o in oids}
        real_put = remote.put
        sent: list[str] = []
        put_then_lose_connection = losing_connection_after(5, real_put, sent)

        monkeypatch.setattr(remote, "put", put_then_lose_connection)
        first = remote.push(store, oids, jobs=1)
        assert first.failed
        monkeypatch.setattr(remote, "put", real_put)
        arrived = remote.has(sorted(keys))
        assert arrived == set(sent)
        second = remote.push(store, oids, jobs=2)
        assert not second.failed
        assert second.skipped == 5
        assert set(second.transferred) == keys - arrived

    def test_tampered_object_is_refused(
        self, remote: Remote, store: ObjectStore, other_store: ObjectStore
    ) -> None:
        good, victim = fill(store, 2)
        remote.push(store, [good, victim])
        remote.put([(object_key(victim), b"evil bytes")])  # tamper on the remote
        result = remote.pull(other_store, [good, victim])
        assert [*result.failed] == [object_key(victim)]
        assert "do not match" in result.failed[object_key(victim)]
        assert other_store.has(good)
        assert not other_store.has(victim)
        assert not list(other_store.tmp_dir.iterdir())
        with pytest.raises(TransferError, match=f"object {victim[:12]}.*test"):
            result.raise_for_failures("pull from", remote.label)

    def test_push_refuses_corrupt_local_object(self, remote: Remote, store: ObjectStore) -> None:
        (oid,) = fill(store, 1)
        path = store.oid_to_path(oid)
        os.chmod(path, 0o644)
        path.write_bytes(b"rotten")
        result = remote.push(store, [oid])
        assert "corrupt" in result.failed[object_key(oid)]
        assert remote.has([object_key(oid)]) == set()

    def test_output_records(self, remote: Remote, store: ObjectStore, tmp_path: Path) -> None:
        (oid,) = fill(store, 1)
        entry = OutputEntry("cd" * 32, oid, "json", 1004, True)
        remote.push(store, [oid])
        assert len(remote.push_outputs([entry]).transferred) == 1
        assert remote.push_outputs([entry]).skipped == 1
        assert list(remote.iter_output_hashes()) == [entry.out_hash]
        remote.put([(record_key("ef" * 32), b"not json")])
        found, invalid = remote.fetch_outputs(["cd" * 32, "ef" * 32, "01" * 32], tmp_path)
        assert found == {entry.out_hash: Record(entry)}
        assert list(invalid) == [record_key("ef" * 32)]

    def test_signed_output_records_keep_their_signature(
        self, remote: Remote, store: ObjectStore, tmp_path: Path
    ) -> None:
        (oid,) = fill(store, 1)
        entries = [OutputEntry(f"{i:02x}" * 32, oid, "json", 1004, True) for i in range(3)]
        signer = generate_signer(tmp_path / "key.pem")
        remote.push(store, [oid])
        assert len(remote.push_outputs(entries, signer=signer).transferred) == 3
        hashes = [e.out_hash for e in entries]
        found, _invalid = remote.fetch_outputs(hashes, tmp_path / "tmp")
        assert {h: r.entry for h, r in found.items()} == {e.out_hash: e for e in entries}
        assert {r.key for r in found.values()} == {signer.public.text}
        trusting = RecordPolicy(TrustedKeys([signer.public]), trust_pickle=False)
        assert trusting.signed(found.values(), remote, tmp_path / "tmp") == list(found.values())
        other = generate_signer(tmp_path / "other.pem")
        stranger = RecordPolicy(TrustedKeys([other.public]), trust_pickle=False)
        assert stranger.signed(found.values(), remote, tmp_path / "tmp") == []

    # -- the whole story, through the CLI ---------------------------------------------------
    def test_round_trip_fresh_clone_runs_no_task(
        self,
        remote_spec: tuple[str, dict[str, Any]],
        extra_remotes: list[tuple[str, str, dict[str, Any]]],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        url, options = remote_spec
        calls = tmp_path / "calls.log"
        monkeypatch.setenv("MERKL_TEST_CALLS", str(calls))
        origin = tmp_path / "origin"
        origin.mkdir()
        monkeypatch.chdir(origin)
        assert run_cli("init").code == 0
        write_module(origin, "pipe", PIPELINE)
        (origin / "data.csv").write_text("a\nb\nc\n")
        assert run_cli("track", "data.csv").code == 0
        ran = run_cli("run", "pipe.pipeline", "data.csv")
        assert ran.code == 0, ran.err
        assert ran.out.strip() == "6"
        for name, tier_url, tier_options in extra_remotes:
            tier = run_cli("remote", "add", name, tier_url, *_option_args(tier_options))
            assert tier.code == 0, tier.err
        added = run_cli("remote", "add", "origin", url, *_option_args(options), "--default")
        assert added.code == 0, added.err
        pushed = run_cli("push")
        assert pushed.code == 0, pushed.err
        assert "pushed 3 object(s)" in pushed.out
        assert "2 output record(s)" in pushed.out

        clone = tmp_path / "clone"  # what `git clone` gives: no .merkl/, no data
        clone.mkdir()
        for name in ("merkl.toml", "pipe.py", "data.csv.merkl"):
            shutil.copy(origin / name, clone / name)
        calls.unlink()
        monkeypatch.chdir(clone)
        assert run_cli("init").code == 0
        pulled = run_cli("pull")
        assert pulled.code == 0, pulled.err
        assert "pulled 3 object(s)" in pulled.out
        assert "2 output record(s)" in pulled.out
        assert (clone / "data.csv").read_text() == "a\nb\nc\n"
        rerun = run_merkl_process("run", "pipe.pipeline", "data.csv", cwd=clone)
        assert rerun.code == 0, rerun.err
        assert rerun.out.strip() == "6"
        assert "0 task(s) run" in rerun.err
        assert not calls.exists()

    @pytest.fixture
    def unusable_spec(self) -> tuple[str, dict[str, Any]]:
        """A remote that cannot be used (unreachable, bad credentials, no bucket/table); its
        URL may hold `${MERKL_BAD_SECRET}`, which must never be printed."""
        raise NotImplementedError

    def test_unusable_remote_is_one_clear_line(
        self,
        unusable_spec: tuple[str, dict[str, Any]],
        repo: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        secret = "hunter2-do-not-print"
        monkeypatch.setenv("MERKL_BAD_SECRET", secret)
        url, options = unusable_spec
        data = repo.root / "data.bin"
        data.write_bytes(b"payload")
        assert run_cli("track", "data.bin").code == 0
        assert run_cli("remote", "add", "bad", url, *_option_args(options), "--default").code == 0
        before = sorted(p.name for p in repo.store.root.rglob("*"))
        for command in ("push", "pull"):
            result = run_cli(command)
            assert result.code == 1, result
            lines = result.err.strip().splitlines()
            assert len(lines) == 1, lines
            assert lines[0].startswith("merkl: error: remote 'bad'"), lines
            assert "Traceback" not in result.err
            assert secret not in result.err + result.out
        assert sorted(p.name for p in repo.store.root.rglob("*")) == before
        remote = open_remote(url, name="bad", options=options)
        with pytest.raises(RemoteError) as info:
            remote.status(["ab" * 32])
        assert secret not in str(info.value)
        remote.close()
