"""Signed output records: an attacker who can write to the remote cannot choose what a victim
gets, on every kind of remote. Every actor is a separate `merkl` process with its own key.

The attacker's pipeline pins `version="1"` on a changed body, so its forged value is stored
under exactly the hash the victim computes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import CliResult, run_merkl_process, write_module
from tests.remotes.conftest import MYSQL_URL, REDIS_URL

HONEST = """
    from merkl import task

    @task(version="1")
    def approve(change):
        return {"approved": change.startswith("reviewed-"), "change": change}

    def pipeline(change: str):
        return approve(change)
"""

FORGED = """
    from merkl import task

    @task(version="1")
    def approve(change):
        return {"approved": True, "change": change}

    def pipeline(change: str):
        return approve(change)
"""


@dataclass
class Actor:
    """A person with their own repository, signing key and `merkl` processes."""

    root: Path
    env: dict[str, str]

    def merkl(self, *argv: str, ok: bool = True) -> CliResult:
        result = run_merkl_process(*argv, cwd=self.root, env=self.env)
        if ok:
            assert result.code == 0, (argv, result.out, result.err)
        return result

    def public_key(self) -> str:
        return self.merkl("key", "show").out.strip()


def make_actor(
    tmp_path: Path, name: str, url: str, options: dict[str, str], module: str, env: dict[str, str]
) -> Actor:
    root = tmp_path / name
    root.mkdir()
    actor_env = {
        **env,
        "MERKL_SIGNING_KEY": str(tmp_path / "keys" / f"{name}.pem"),
        "XDG_CONFIG_HOME": str(tmp_path / "config" / name),
    }
    actor = Actor(root, actor_env)
    actor.merkl("init")
    write_module(root, "gate", module)
    actor.merkl(
        "remote", "add", "origin", url, *(f"{k}={v}" for k, v in options.items()), "--default"
    )
    return actor


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERKL_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture(params=["directory", "redis", "postgresql", "mariadb", "sqlite", "s3"])
def shared_remote(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, dict[str, str], dict[str, str]]:
    """(url, options, extra environment) of a fresh remote of each kind."""
    env = _base_env()
    kind = request.param
    if kind == "directory":
        return str(tmp_path / "shared"), {}, env
    if kind == "redis":
        return REDIS_URL, {"prefix": request.getfixturevalue("redis_prefix")}, env
    if kind == "postgresql":
        url, schema = request.getfixturevalue("postgres_schema")
        return url, {"schema": schema}, env
    if kind == "mariadb":
        return request.getfixturevalue("mysql_database"), {}, env
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}", {}, env
    bucket = request.getfixturevalue("s3_bucket")
    from tests.remotes.conftest import S3_ENV

    env.update(S3_ENV)
    env["AWS_ENDPOINT_URL"] = request.getfixturevalue("moto_endpoint")
    return f"s3://{bucket}/cache", {}, env


assert MYSQL_URL  # the fixtures above read it through conftest


def test_forged_records_cannot_change_what_a_victim_gets(tmp_path, shared_remote):
    url, options, env = shared_remote
    attacker = make_actor(tmp_path, "attacker", url, options, FORGED, env)
    colleague = make_actor(tmp_path, "colleague", url, options, HONEST, env)
    victim = make_actor(tmp_path, "victim", url, options, HONEST, env)
    for actor in (attacker, colleague, victim):
        actor.merkl("key", "generate")
    victim.merkl("trust", "add", colleague.public_key(), "--name", "colleague")
    victim.merkl("trust", "add", victim.public_key(), "--name", "me")

    # The attacker computes a forged approval and pushes it (signed with their own key).
    forged = attacker.merkl("run", "gate.pipeline", "rm-rf-prod")
    assert "'approved': True" in forged.out
    attacker.merkl("push")

    # The victim pulls: the record is skipped, named in one line, and the task runs locally.
    pulled = victim.merkl("pull")
    assert "skipped 1 untrusted output record(s) from remote 'origin'" in pulled.out
    run = victim.merkl("run", "--pull", "gate.pipeline", "rm-rf-prod")
    assert "'approved': False" in run.out
    assert "1 task(s) run" in run.err

    # A trusted colleague's push makes a fresh clone run no task at all.
    colleague.merkl("run", "gate.pipeline", "reviewed-42")
    colleague.merkl("push")
    clone = make_actor(tmp_path, "clone", url, options, HONEST, env)
    (clone.root / "merkl.toml").write_bytes((victim.root / "merkl.toml").read_bytes())
    fresh = clone.merkl("run", "--pull", "gate.pipeline", "reviewed-42")
    assert "'approved': True" in fresh.out
    assert "0 task(s) run" in fresh.err, fresh.err


def test_unsigned_legacy_records_are_refused_once_trust_is_configured(tmp_path):
    env = _base_env()
    url = str(tmp_path / "shared")
    legacy = make_actor(tmp_path, "legacy", url, {}, FORGED, env)  # no key: pushes unsigned
    victim = make_actor(tmp_path, "victim", url, {}, HONEST, env)
    legacy.merkl("run", "gate.pipeline", "x")
    pushed = legacy.merkl("push")
    assert "1 output record(s)" in pushed.out

    untrusting = victim.merkl("run", "--pull", "gate.pipeline", "x")  # no trust configured
    assert "'approved': True" in untrusting.out  # the old behaviour a trust list closes

    careful = make_actor(tmp_path, "careful", url, {}, HONEST, env)
    careful.merkl("key", "generate")
    careful.merkl("trust", "add", careful.public_key())
    refused = careful.merkl("run", "--pull", "gate.pipeline", "x")
    assert "'approved': False" in refused.out
    assert "skipped 1 untrusted output record(s)" in refused.err

    # A repository that trusts keys tells a pusher without one that readers will skip them.
    legacy.merkl("trust", "add", careful.public_key())
    legacy.merkl("run", "gate.pipeline", "y")
    noted = legacy.merkl("push")
    assert "pushed unsigned" in noted.err
    assert "merkl key generate" in noted.err


def test_trust_commands_edit_the_committed_config(tmp_path):
    env = _base_env()
    actor = make_actor(tmp_path, "me", str(tmp_path / "shared"), {}, HONEST, env)
    missing = actor.merkl("key", "show", ok=False)
    assert missing.code == 1
    assert "merkl key generate" in missing.err
    created = actor.merkl("key", "generate")
    key_file = Path(actor.env["MERKL_SIGNING_KEY"])
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert str(key_file) in created.out
    again = actor.merkl("key", "generate", ok=False)
    assert again.code == 1
    assert "already exists" in again.err
    public = actor.public_key()
    assert public.startswith("ed25519:")
    assert actor.merkl("key", "show", "--name", "ci").out.strip() == f"ci:{public}"

    actor.merkl("trust", "add", public, "--name", "me")
    actor.merkl("trust", "add", "bob:ed25519:" + "A" * 43 + "=")
    listed = actor.merkl("trust", "list").out.splitlines()
    assert listed == [f"me:{public}", "bob:ed25519:" + "A" * 43 + "="]
    assert f"me:{public}" in (actor.root / "merkl.toml").read_text()
    actor.merkl("trust", "remove", "bob")
    assert actor.merkl("trust", "list").out.splitlines() == [f"me:{public}"]

    bad = actor.merkl("trust", "add", "ed25519:not-base64!", ok=False)
    assert bad.code == 2
    assert "not a public key" in bad.err
    assert "Traceback" not in bad.err
    unknown = actor.merkl("trust", "remove", "nobody", ok=False)
    assert unknown.code == 2
    assert "trusted: me" in unknown.err


def test_init_sign_creates_and_trusts_the_users_key(tmp_path):
    env = {**_base_env(), "MERKL_SIGNING_KEY": str(tmp_path / "keys" / "me.pem")}
    root = tmp_path / "fresh"
    root.mkdir()
    first = run_merkl_process("init", "--sign", cwd=root, env=env)
    assert first.code == 0, first.err
    assert "created your signing key" in first.out
    public = run_merkl_process("key", "show", cwd=root, env=env).out.strip()
    listed = run_merkl_process("trust", "list", cwd=root, env=env).out.strip()
    assert listed.endswith(public)
    again = run_merkl_process("init", "--sign", cwd=root, env=env)  # harmless, same key
    assert "created" not in again.out
    assert run_merkl_process("trust", "list", cwd=root, env=env).out.strip() == listed


def test_read_through_uses_only_trusted_records(tmp_path):
    """`read_through = true`: on a local miss the attacker's record is skipped (one warning)
    and the output computed; a trusted colleague's record is used."""
    env = _base_env()
    url = str(tmp_path / "shared")
    attacker = make_actor(tmp_path, "attacker", url, {}, FORGED, env)
    colleague = make_actor(tmp_path, "colleague", url, {}, HONEST, env)
    victim = make_actor(tmp_path, "victim", url, {"read_through": "true"}, HONEST, env)
    for actor in (attacker, colleague, victim):
        actor.merkl("key", "generate")
    victim.merkl("trust", "add", colleague.public_key(), "--name", "colleague")
    attacker.merkl("run", "gate.pipeline", "rm-rf-prod")
    attacker.merkl("push")
    colleague.merkl("run", "gate.pipeline", "reviewed-1")
    colleague.merkl("push")

    forged = victim.merkl("run", "gate.pipeline", "rm-rf-prod")
    assert "'approved': False" in forged.out
    assert "1 task(s) run" in forged.err
    assert "skipped an untrusted output record" in forged.err
    trusted = victim.merkl("run", "gate.pipeline", "reviewed-1")
    assert "'approved': True" in trusted.out
    assert "0 task(s) run" in trusted.err  # read through, not computed
    assert "untrusted" not in trusted.err
