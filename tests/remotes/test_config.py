"""`merkl remote add|list|remove`, config validation, ${VAR} expansion and secret masking."""

from __future__ import annotations

import tomllib

import pytest

from merkl.errors import ConfigError, UnknownRemoteError
from merkl.remotes import get_remote_class, open_remote
from merkl.remotes.config import get_remote, remote_configs
from merkl.remotes.local import LocalRemote
from merkl.remotes.urls import expand_vars, mask_url, scheme_of
from tests.helpers import run_cli


def test_add_writes_merkl_toml_and_keeps_comments(repo):
    (repo.root / "merkl.toml").write_text("# my precious comment\n[core]\nlink = 'copy'\n")
    result = run_cli("remote", "add", "origin", "s3://bucket/x", "region=eu-west-1", "--default")
    assert result.code == 0, result.err
    text = (repo.root / "merkl.toml").read_text()
    assert "# my precious comment" in text
    config = tomllib.loads(text)
    assert config["core"] == {"link": "copy", "remote": "origin"}
    assert config["remotes"]["origin"] == {"url": "s3://bucket/x", "region": "eu-west-1"}


def test_add_local_writes_the_ignored_config(repo):
    assert run_cli("remote", "add", "scratch", "/tmp/x", "--local").code == 0
    assert "scratch" not in (repo.root / "merkl.toml").read_text()
    assert "scratch" in (repo.dot_dir / "config.toml").read_text()
    assert set(remote_configs(repo)) == {"scratch"}


def test_list_and_remove(repo):
    run_cli("remote", "add", "a", "/tmp/a", "--default")
    run_cli("remote", "add", "b", "redis://:${PW}@cache:6379/0")
    listed = run_cli("remote", "list")
    assert listed.code == 0
    assert listed.out.splitlines() == [
        "a\t/tmp/a\tdefault\tmerkl.toml",
        "b\tredis://:${PW}@cache:6379/0\t\tmerkl.toml",
    ]
    removed = run_cli("remote", "remove", "a")
    assert removed.code == 0, removed.err
    config = tomllib.loads((repo.root / "merkl.toml").read_text())
    assert "remote" not in config["core"]
    assert list(config["remotes"]) == ["b"]
    missing = run_cli("remote", "remove", "a")
    assert missing.code == 1
    assert "no remote 'a'" in missing.err
    assert "known: b" in missing.err


def test_literal_password_is_refused_and_not_echoed(repo):
    result = run_cli("remote", "add", "db", "postgresql://me:hunter2@db/prod")
    assert result.code == 2
    assert "hunter2" not in result.err + result.out
    assert "${VAR}" in result.err
    assert "db" not in tomllib.loads((repo.root / "merkl.toml").read_text()).get("remotes", {})


def test_literal_password_in_a_hand_edited_file_is_an_error(repo):
    (repo.root / "merkl.toml").write_text('[remotes.x]\nurl = "redis://:hunter2@h/0"\n')
    with pytest.raises(ConfigError) as info:
        remote_configs(repo)
    assert "hunter2" not in str(info.value)
    assert "merkl.toml" in str(info.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad.name", "/tmp/x"], "may only contain"),
        (["x", "ftp://host/x"], "unknown remote URL scheme 'ftp'"),
        (["x", "/tmp/x", "novalue"], "expected KEY=VALUE"),
        (["x", "/tmp/x", "colour=blue"], "unknown option(s) colour"),
        (["x", "/tmp/x", "jobs=0"], "jobs must be a positive integer"),
        (["x", "tiered:nope,neither"], "unknown remote(s) nope, neither"),
    ],
)
def test_bad_remote_add(repo, args, message):
    before = (repo.root / "merkl.toml").read_text()
    result = run_cli("remote", "add", *args)
    assert result.code in (1, 2), result
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert (repo.root / "merkl.toml").read_text() == before


def test_push_without_any_remote_says_how_to_add_one(repo):
    result = run_cli("push")
    assert result.code == 1
    assert "merkl remote add" in result.err


def test_several_remotes_and_no_default(repo):
    run_cli("remote", "add", "a", "/tmp/a")
    run_cli("remote", "add", "b", "/tmp/b")
    result = run_cli("pull")
    assert result.code == 1
    assert "--remote NAME" in result.err


def test_unknown_remote_name(repo):
    run_cli("remote", "add", "a", "/tmp/a")
    result = run_cli("push", "--remote", "zzz")
    assert result.code == 1
    assert "no remote 'zzz'" in result.err
    assert "known: a" in result.err


def test_relative_directory_is_relative_to_the_repo_root(repo, tmp_path):
    run_cli("remote", "add", "a", "../shared-remote", "--default")
    remote = get_remote(repo)
    assert isinstance(remote, LocalRemote)
    assert remote.root == repo.root.parent / "shared-remote"


def test_vars_are_expanded_at_use(repo, monkeypatch):
    run_cli("remote", "add", "a", "${MERKL_REMOTE_DIR}/cache", "--default")
    with pytest.raises(ConfigError, match="MERKL_REMOTE_DIR not set"):
        get_remote(repo)
    monkeypatch.setenv("MERKL_REMOTE_DIR", "/srv")
    assert get_remote(repo).root.as_posix() == "/srv/cache"


def test_tiered_cycle_is_reported(repo):
    (repo.root / "merkl.toml").write_text(
        '[remotes.a]\nurl = "tiered:b"\n[remotes.b]\nurl = "tiered:a"\n'
    )
    with pytest.raises(ConfigError, match="cycle"):
        get_remote(repo, "a")


def test_masking():
    assert mask_url("redis://user:pw@host:1/0") == "redis://user:***@host:1/0"
    assert (
        mask_url("postgresql://u@h/db?password=abc&x=1") == "postgresql://u@h/db?password=***&x=1"
    )
    assert mask_url("/plain/path") == "/plain/path"
    assert expand_vars("a${X}b", "here", {"X": "1"}) == "a1b"


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("/data", "file"),
        ("file:///data", "file"),
        ("s3://b/p", "s3"),
        ("redis://h", "redis"),
        ("mysql+pymysql://h/d", "mysql"),
        ("tiered:a,b", "tiered"),
    ],
)
def test_scheme_of(url, scheme):
    assert scheme_of(url) == scheme


def test_registry_hints_and_unknown_schemes(monkeypatch):
    from merkl.errors import RemoteUnavailableError
    from merkl.remotes import KNOWN_REMOTES, RemoteKind

    with pytest.raises(UnknownRemoteError, match="gopher"):
        get_remote_class("gopher://x")
    monkeypatch.setitem(KNOWN_REMOTES, "s3", RemoteKind("merkl_not_installed:S3Remote", "s3"))
    with pytest.raises(RemoteUnavailableError, match=r"pip install 'merkl\[s3\]'"):
        get_remote_class("s3://bucket")


def test_import_merkl_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, merkl, merkl.cli, merkl.remotes, merkl.remotes.config; "
        "heavy = [m for m in ('boto3', 'redis', 'sqlalchemy', 'tomlkit') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_open_remote_rejects_a_bad_s3_url():
    from merkl.errors import RemoteError

    with pytest.raises(RemoteError, match="names no bucket"):
        open_remote("s3://", name="x")
