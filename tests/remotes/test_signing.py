"""Forgeries against signed records on a directory remote the attacker can write to: a trusted
signature copied onto another output, an edited record, a replaced manifest."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from merkl.cache.index import OutputEntry
from merkl.remotes import open_remote
from merkl.remotes.base import Remote
from merkl.remotes.records import object_key, record_key
from merkl.remotes.signing import BATCH_RECORDS, TrustedKeys, generate_signer, parse_public_key
from merkl.remotes.trust import RecordPolicy

GOOD = OutputEntry("aa" * 32, "bb" * 32, "json", 10, True)
OTHER = OutputEntry("cc" * 32, "dd" * 32, "json", 10, True)


@pytest.fixture
def signed_remote(tmp_path: Path) -> tuple[Remote, Path, RecordPolicy]:
    """A directory remote holding GOOD, signed by a trusted colleague."""
    colleague = generate_signer(tmp_path / "colleague.pem")
    remote = open_remote(str(tmp_path / "shared"), name="origin")
    remote.push_outputs([GOOD], signer=colleague)
    policy = RecordPolicy(TrustedKeys([colleague.public]), trust_pickle=False)
    return remote, tmp_path / "shared", policy


def _accepted(remote: Remote, policy: RecordPolicy, tmp_path: Path, out_hash: str) -> bool:
    found, _invalid = remote.fetch_outputs([out_hash], tmp_path / "tmp")
    return bool(policy.signed(found.values(), remote, tmp_path / "tmp"))


def _rewrite(folder: Path, out_hash: str, change: dict[str, object]) -> None:
    path = folder / record_key(out_hash)
    os.chmod(path, 0o644)
    path.write_bytes(orjson.dumps({**orjson.loads(path.read_bytes()), **change}))


def test_the_genuine_record_is_accepted(signed_remote, tmp_path):
    remote, _folder, policy = signed_remote
    assert _accepted(remote, policy, tmp_path, GOOD.out_hash)


def test_a_signature_copied_onto_another_output_is_refused(signed_remote, tmp_path):
    remote, folder, policy = signed_remote
    signed = (folder / record_key(GOOD.out_hash)).read_bytes()
    forged = orjson.loads(signed) | {"oid": "blake3:" + OTHER.oid}
    target = folder / record_key(OTHER.out_hash)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(orjson.dumps(forged))
    assert not _accepted(remote, policy, tmp_path, OTHER.out_hash)


@pytest.mark.parametrize(
    "change",
    [{"oid": "blake3:" + "ee" * 32}, {"serializer": "bytes"}, {"size": 11}, {"sig": "AAAA"}],
    ids=["oid", "serializer", "size", "signature"],
)
def test_an_edited_record_is_refused(signed_remote, tmp_path, change):
    remote, folder, policy = signed_remote
    _rewrite(folder, GOOD.out_hash, change)
    assert not _accepted(remote, policy, tmp_path, GOOD.out_hash)


def test_a_replaced_manifest_is_refused(signed_remote, tmp_path):
    """The attacker lists their own record in the manifest: its hash no longer matches."""
    remote, folder, policy = signed_remote
    record = orjson.loads((folder / record_key(GOOD.out_hash)).read_bytes())
    manifest = folder / object_key(record["batch"].removeprefix("blake3:"))
    os.chmod(manifest, 0o644)
    manifest.write_bytes(manifest.read_bytes() + b"\n" + OTHER.out_hash.encode())
    assert not _accepted(remote, policy, tmp_path, GOOD.out_hash)


def test_a_record_signed_by_an_untrusted_key_is_refused(tmp_path):
    attacker = generate_signer(tmp_path / "attacker.pem")
    remote = open_remote(str(tmp_path / "shared"), name="origin")
    remote.push_outputs([GOOD], signer=attacker)
    someone = parse_public_key("ed25519:" + "A" * 43 + "=", "test")
    policy = RecordPolicy(TrustedKeys([someone]), trust_pickle=False)
    assert not _accepted(remote, policy, tmp_path, GOOD.out_hash)


def test_many_records_are_checked_with_one_signature_per_batch(tmp_path):
    signer = generate_signer(tmp_path / "key.pem")
    remote = open_remote(str(tmp_path / "shared"), name="origin")
    entries = [OutputEntry(f"{i:064x}", "bb" * 32, "json", 1, True) for i in range(600)]
    remote.push_outputs(entries, signer=signer)
    found, _invalid = remote.fetch_outputs([e.out_hash for e in entries], tmp_path / "tmp")
    keys = TrustedKeys([signer.public])
    policy = RecordPolicy(keys, trust_pickle=False)
    assert len(policy.signed(found.values(), remote, tmp_path / "tmp")) == 600
    assert len(policy.manifests) == -(-600 // BATCH_RECORDS)  # 3 manifests, 3 checks
    assert len(keys._checked) == len(policy.manifests)
