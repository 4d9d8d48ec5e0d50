"""Holes a hostile remote could use even without forging signatures: a record naming another
serializer, a custom unpickling serializer, a record planted to leak a private object, a huge
record. Each attacker and victim is a separate `merkl` process."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import orjson

from merkl.cache.index import OutputEntry
from merkl.hashing import hash_bytes
from merkl.remotes import open_remote
from merkl.remotes.records import record_key
from merkl.repo import Repo
from merkl.serializers import BytesSerializer, JsonSerializer, Serializer
from tests.helpers import run_merkl_process, write_module
from tests.reliability.test_security_remotes import PICKLE_PIPE


def _env(tmp_path: Path, who: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERKL_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config" / who)
    return env


def _actor(tmp_path: Path, who: str, module: str, remote: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / who
    root.mkdir()
    env = _env(tmp_path, who)
    for argv in (("init",), ("remote", "add", "origin", str(remote), "--default")):
        result = run_merkl_process(*argv, cwd=root, env=env)
        assert result.code == 0, result.err
    write_module(root, "gate", module)
    return root, env


JSON_GATE = """
    from merkl import task

    @task(version="1")
    def approve(change):
        return {"approved": False}

    def pipeline(change: str):
        return approve(change)
"""

BYTES_GATE = """
    from merkl import BytesSerializer, task

    @task(version="1", serializers=BytesSerializer())
    def approve(change):
        return b"approved"

    def pipeline(change: str):
        return approve(change)
"""


def test_a_record_with_another_serializer_is_refused(tmp_path):
    """The attacker's record says `bytes` for a JSON task: the victim computes it instead."""
    remote = tmp_path / "shared"
    attacker, attacker_env = _actor(tmp_path, "attacker", BYTES_GATE, remote)
    victim, victim_env = _actor(tmp_path, "victim", JSON_GATE, remote)
    assert (
        "b'approved'"
        in run_merkl_process("run", "gate.pipeline", "x", cwd=attacker, env=attacker_env).out
    )
    assert run_merkl_process("push", cwd=attacker, env=attacker_env).code == 0
    result = run_merkl_process("run", "--pull", "gate.pipeline", "x", cwd=victim, env=victim_env)
    assert result.code == 0, result.err
    assert result.out.strip().splitlines()[-1] == "{'approved': False}"
    again = run_merkl_process("run", "gate.pipeline", "x", cwd=victim, env=victim_env)
    assert again.out.strip().splitlines()[-1] == "{'approved': False}"
    assert "0 task(s) run" in again.err  # the local result replaced the foreign record


MINE = """
    import pickle
    from merkl import Serializer, task

    class Mine(Serializer):  # a user's own pickle-based serializer, `is_safe` left unset
        name = "mine"

        def dump(self, value):
            return pickle.dumps(value)

        def load(self, data):
            return pickle.loads(data)
"""
# The harmful pipeline of test_security_remotes, with that serializer instead of pickle's.
PICKLING_GATE = PICKLE_PIPE.replace("from merkl import PickleSerializer, task", MINE).replace(
    "serializers=PickleSerializer()", "serializers=Mine()"
)


def test_custom_serializers_are_unsafe_unless_they_say_otherwise(tmp_path):
    class Plain(Serializer):
        name = "plain-test"

    assert Plain.is_safe is False
    assert JsonSerializer.is_safe
    assert BytesSerializer.is_safe

    remote, marker = tmp_path / "shared", tmp_path / "pwned"
    attacker, attacker_env = _actor(tmp_path, "attacker", PICKLING_GATE, remote)
    victim, victim_env = _actor(tmp_path, "victim", PICKLING_GATE, remote)
    env = {**attacker_env, "MERKL_TEST_ATTACKER": "1"}
    assert run_merkl_process("run", "gate.pipeline", str(marker), cwd=attacker, env=env).code == 0
    assert run_merkl_process("push", cwd=attacker, env=attacker_env).code == 0
    marker.unlink()
    result = run_merkl_process(
        "run", "--pull", "gate.pipeline", str(marker), cwd=victim, env=victim_env
    )
    assert result.code == 0, result.err
    assert not marker.exists(), "a custom pickling serializer loaded remote bytes"
    assert "1 task(s) run" in result.err


LOCAL_SECRET = """
    from merkl import CachePolicy, task

    @task(cache_policy=CachePolicy.LOCAL)
    def secret():
        return {"api_key": "private-7f3a"}

    def pipeline():
        return secret()
"""


def test_a_planted_record_cannot_make_the_victim_push_a_private_object(tmp_path):
    """A record pointing at an object the victim holds but never pushed is not indexed, so
    the victim's next push does not upload it."""
    remote = tmp_path / "shared"
    victim, victim_env = _actor(tmp_path, "victim", LOCAL_SECRET, remote)
    assert run_merkl_process("run", "gate.pipeline", cwd=victim, env=victim_env).code == 0
    private = orjson.dumps({"api_key": "private-7f3a"})
    oid = hash_bytes(private)
    assert Repo(victim).store.has(oid)  # inline: a small output

    planted = OutputEntry("ee" * 32, oid, "json", len(private), True)
    attacker = open_remote(str(remote), name="origin")
    attacker.push_outputs([planted])
    attacker.close()

    pulled = run_merkl_process("pull", cwd=victim, env=victim_env)
    assert pulled.code in (0, 1), pulled.err
    assert run_merkl_process("push", cwd=victim, env=victim_env).code == 0
    assert not (remote / "objects" / oid[:2] / oid[2:]).exists(), "the private object leaked"


def test_a_huge_record_is_refused_without_reading_it(tmp_path):
    remote_dir = tmp_path / "shared"
    remote = open_remote(str(remote_dir), name="origin")
    remote.push_outputs([OutputEntry("aa" * 32, "bb" * 32, "json", 1, True)])
    huge = remote_dir / record_key("aa" * 32)
    os.chmod(huge, 0o644)
    with open(huge, "ab") as handle:
        handle.truncate(40 << 20)  # a sparse 40 MB record
    tracemalloc.start()
    try:
        found, invalid = remote.fetch_outputs(["aa" * 32], tmp_path / "tmp")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        remote.close()
    assert found == {}
    assert "larger than" in invalid[record_key("aa" * 32)]
    assert peak < 8 << 20


def test_a_record_with_unknown_fields_under_the_cap_still_loads(tmp_path):
    remote_dir = tmp_path / "shared"
    remote = open_remote(str(remote_dir), name="origin")
    entry = OutputEntry("aa" * 32, "bb" * 32, "json", 1, True)
    remote.push_outputs([entry])
    path = remote_dir / record_key("aa" * 32)
    os.chmod(path, 0o644)
    padded = path.read_bytes()[:-1] + b',"pad":"' + b"x" * 100 + b'"}'
    path.write_bytes(padded)
    found, invalid = remote.fetch_outputs(["aa" * 32], tmp_path / "tmp")
    remote.close()
    assert invalid == {}
    assert found["aa" * 32].entry == entry
