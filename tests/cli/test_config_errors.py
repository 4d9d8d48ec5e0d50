"""Config mistakes name the file and the key, and exit 1; `remote add` does not overwrite."""

from __future__ import annotations

from tests.helpers import run_cli


def test_remote_add_refuses_an_existing_name(repo, tmp_path):
    assert run_cli("remote", "add", "origin", str(tmp_path / "a")).code == 0
    again = run_cli("remote", "add", "origin", str(tmp_path / "b"))
    assert again.code == 1
    assert "remote 'origin' already exists" in again.err
    assert "--force" in again.err
    assert str(tmp_path / "a") in (repo.root / "merkl.toml").read_text()
    forced = run_cli("remote", "add", "--force", "origin", str(tmp_path / "b"))
    assert forced.code == 0, forced.err
    assert "replaced" in forced.out
    assert str(tmp_path / "b") in (repo.root / "merkl.toml").read_text()
    assert str(tmp_path / "a") not in (repo.root / "merkl.toml").read_text()


def test_remote_add_local_over_a_project_remote_is_a_replacement_too(repo, tmp_path):
    assert run_cli("remote", "add", "origin", str(tmp_path / "a")).code == 0
    local = run_cli("remote", "add", "--local", "origin", str(tmp_path / "b"))
    assert local.code == 1
    assert "merkl.toml" in local.err


def test_bad_fsync_in_local_config_blames_the_local_file(repo, project):
    (repo.dot_dir / "config.toml").write_text('[core]\nfsync = "yes"\n')
    result = run_cli("run", "p.pipe", "3")
    assert result.code == 1
    line = result.err.strip()
    assert line.startswith(f"merkl: error: {repo.dot_dir / 'config.toml'}: ")
    assert "[core] fsync" in line
    assert "\n" not in line


def test_bad_fsync_in_project_config_blames_merkl_toml(repo, project):
    path = repo.root / "merkl.toml"
    path.write_text(path.read_text().replace("fsync = true", 'fsync = "yes"'))
    result = run_cli("run", "p.pipe", "3")
    assert result.code == 1
    assert result.err.startswith(f"merkl: error: {path}: [core] fsync")


def test_bad_run_table_value_names_the_file_and_key(repo, project):
    (repo.dot_dir / "config.toml").write_text('[run]\njobs = "many"\n')
    result = run_cli("run", "p.pipe", "3")
    assert result.code == 1
    assert result.err.startswith(f"merkl: error: {repo.dot_dir / 'config.toml'}: [run] jobs")
    path = repo.root / "merkl.toml"
    (repo.dot_dir / "config.toml").unlink()
    path.write_text(path.read_text() + "\n[run]\nexecutor = 3\n")
    result = run_cli("run", "p.pipe", "3")
    assert result.code == 1
    assert result.err.startswith(f"merkl: error: {path}: [run] executor")


def test_run_not_a_table(repo, project):
    (repo.dot_dir / "config.toml").write_text('run = "fast"\n')
    result = run_cli("run", "p.pipe", "3")
    assert result.code == 1
    assert str(repo.dot_dir / "config.toml") in result.err
    assert "'run'" in result.err


def test_bad_link_type_in_local_config_blames_the_local_file(repo):
    (repo.dot_dir / "config.toml").write_text('[core]\nlink = "teleport"\n')
    (repo.root / "data.txt").write_text("x")
    result = run_cli("track", "data.txt")
    assert result.code == 1
    assert result.err.startswith(f"merkl: error: {repo.dot_dir / 'config.toml'}: [core] link")
    assert (repo.root / "data.txt").read_text() == "x"
    assert not (repo.root / "data.txt.merkl").exists()
