"""The command line as git and DVC users expect it: aliases, version, help, pipes."""

from __future__ import annotations

import subprocess
import sys

import merkl
from tests.helpers import run_cli, run_merkl_process


def test_dry_run_is_run_dry(project):
    alias = run_cli("dry-run", "--fill-missing", "p.pipe", "3")
    spelled = run_cli("run", "--dry", "--fill-missing", "p.pipe", "3")
    assert alias.code == 0, alias.err
    assert alias.out == spelled.out
    assert "p.add  missing" in alias.out
    assert "task(s) run" not in alias.err  # nothing ran


def test_dry_run_usage_line_names_dry_run(project):
    result = run_cli("dry-run", "p.pipe", "--nosuch")
    assert result.code == 2
    assert "Usage: merkl dry-run p.pipe" in result.err


def test_version_flag_and_command(merkl_globals):
    for argv in (["--version"], ["version"], ["-V"]):
        result = run_cli(*argv)
        assert result.code == 0, result.err
        assert result.out == f"merkl {merkl.__version__}\n"


def test_help_gives_every_command_a_description(merkl_globals):
    result = run_cli("--help")
    assert result.code == 0
    commands = result.out.split("Commands:")[1].strip().splitlines()
    firsts = [line.split(maxsplit=1) for line in commands if not line.startswith("    ")]
    assert {"remote", "catalog", "version", "install", "uninstall"} <= {f[0] for f in firsts}
    assert all(len(words) == 2 for words in firsts), firsts
    assert "dry-run" in result.out  # the alias is explained in the description


def test_group_help_names_its_commands(merkl_globals):
    result = run_cli("remote", "--help")
    assert result.code == 0
    assert "add" in result.out
    assert "list" in result.out


def _shell(project, script):
    return subprocess.run(
        ["bash", "-c", script], cwd=project, capture_output=True, text=True, timeout=120
    )


def test_output_piped_into_a_reader_that_leaves_ends_quietly(project):
    merkl = f"'{sys.executable}' -m merkl"
    # 1 MB of result into `true`, which reads nothing: every write after it left fails.
    done = _shell(project, f"{merkl} run p.big | true; echo ${{PIPESTATUS[0]}}")
    assert done.stdout == "141\n"  # 128 + SIGPIPE, what a shell reports for git there
    assert "Error" not in done.stderr
    assert "Exception ignored" not in done.stderr
    assert "task(s) run" in done.stderr  # the run itself finished
    # `head` reads a little and leaves while merkl may still be writing.
    done = _shell(project, f'{merkl} run p.big | head -c 10; echo " ${{PIPESTATUS[0]}}"')
    assert done.stdout in ("'xxxxxxxxx 141\n", "'xxxxxxxxx 0\n")
    assert "Error" not in done.stderr


def test_unknown_option_usage_names_the_command_typed(project):
    for command in ("dag", "why", "run"):
        result = run_cli(command, "p.pipe", "3", "--nosuch")
        assert result.code == 2, result.err
        assert f"Usage: merkl {command} p.pipe" in result.err, result.err


def test_version_as_a_process(merkl_globals):
    result = run_merkl_process("--version", cwd=merkl_globals)
    assert result.code == 0
    assert result.out.strip() == f"merkl {merkl.__version__}"
