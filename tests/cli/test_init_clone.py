"""A clone with a committed merkl.toml works without `merkl init`; `init` is careful."""

from __future__ import annotations

import shutil

from tests.helpers import run_cli, run_merkl_process, write_module


def _clone_without_dot_dir(project, tmp_path):
    clone = tmp_path / "clone"
    shutil.copytree(project, clone, ignore=shutil.ignore_patterns(".merkl", "__pycache__"))
    return clone


def test_first_command_in_a_clone_sets_up_dot_merkl_once(project, tmp_path):
    clone = _clone_without_dot_dir(project, tmp_path)
    assert not (clone / ".merkl").exists()
    first = run_merkl_process("run", "p.pipe", "3", cwd=clone)
    assert first.code == 0, first.err
    assert first.out.splitlines()[-1] == "5"
    assert first.err.count(".merkl") == 1
    assert "merkl.toml" in first.err
    assert (clone / ".merkl" / "index.sqlite").exists()
    second = run_merkl_process("status", cwd=clone)
    assert second.code == 0, second.err
    assert ".merkl" not in second.err  # said once


def test_clone_from_a_subfolder(project, tmp_path):
    clone = _clone_without_dot_dir(project, tmp_path)
    (clone / "sub").mkdir()
    result = run_merkl_process("status", cwd=clone / "sub")
    assert result.code == 0, result.err
    assert (clone / ".merkl").is_dir()
    assert not (clone / "sub" / ".merkl").exists()


def test_no_merkl_toml_still_says_run_init(merkl_globals):
    result = run_cli("status")
    assert result.code == 1
    assert "merkl init" in result.err


def test_init_twice_says_already(merkl_globals):
    first = run_cli("init")
    assert first.code == 0
    assert "Initialized" in first.out
    again = run_cli("init")
    assert again.code == 0, again.err
    assert again.out.startswith("merkl repository already initialized in ")
    assert str(merkl_globals / ".merkl") in again.out


def test_init_in_a_subfolder_refuses_unless_subdir(repo):
    sub = repo.root / "models"
    sub.mkdir()
    refused = run_cli("init", str(sub))
    assert refused.code == 1
    assert str(repo.root) in refused.err
    assert "--subdir" in refused.err
    assert not (sub / ".merkl").exists()
    allowed = run_cli("init", "--subdir", str(sub))
    assert allowed.code == 0, allowed.err
    assert (sub / ".merkl").is_dir()


def test_init_inside_a_clone_subfolder_refuses_too(project, tmp_path):
    clone = _clone_without_dot_dir(project, tmp_path)
    (clone / "sub").mkdir()
    write_module(clone / "sub", "q", "x = 1\n")
    refused = run_merkl_process("init", cwd=clone / "sub")
    assert refused.code == 1
    assert "--subdir" in refused.err
