"""The smaller command-line fixes of issue 23, each as a user meets it."""

from __future__ import annotations

from tests.catalog.test_recipe import VALID
from tests.helpers import damage_object, run_cli, write_module


def test_verify_repair_exits_0_when_everything_was_repaired(project, repo):
    assert run_cli("run", "p.pipe", "3").code == 0
    damage_object(repo, next(repo.index.iter_outputs()).oid, b"rot")
    assert run_cli("verify").code == 1
    repaired = run_cli("verify", "--repair")
    assert repaired.code == 0, repaired.err
    assert "repaired all" in repaired.err
    assert run_cli("verify").code == 0


def test_log_of_an_unknown_task_says_so(project):
    assert run_cli("run", "p.pipe", "3").code == 0
    result = run_cli("log", "--task", "nosuch")
    assert result.code == 1
    assert "no task 'nosuch' in the run log" in result.err
    assert "p.add" in result.err  # what did run
    assert run_cli("log", "--task", "add").code == 0


def test_relative_sqlite_url_names_the_resolved_file(repo):
    assert run_cli("remote", "add", "db", "sqlite:///no/such/folder/x.db").code == 0
    (repo.root / "f.txt").write_text("x")
    assert run_cli("track", "f.txt").code == 0
    result = run_cli("push", "-r", "db")
    assert result.code == 1
    assert f"file {repo.root / 'no/such/folder/x.db'}" in result.err


def test_run_dry_calls_a_tracked_input_file_tracked(repo):
    (repo.root / "data.csv").write_text("1,2\n")
    assert run_cli("track", "data.csv").code == 0
    (repo.root / "plain.csv").write_text("3\n")
    write_module(
        repo.root,
        "files",
        """
        import merkl
        from merkl import task

        @task
        def size(data):
            return len(data)

        def pipe():
            return size(merkl.read_file("data.csv")), size(merkl.read_file("plain.csv"))
        """,
    )
    dry = run_cli("run", "--dry", "files.pipe")
    assert dry.code == 0, dry.err
    assert "file data.csv  tracked" in dry.out
    assert "file plain.csv  file" in dry.out
    assert "tracked" in run_cli("dag", "files.pipe").out


def test_a_lambda_argument_gets_a_fix_that_works(repo):
    write_module(
        repo.root,
        "lam",
        """
        from merkl import task

        @task
        def apply(f, x):
            return f(x)

        def pipe():
            return apply(lambda v: v + 1, 3)
        """,
    )
    result = run_cli("run", "lam.pipe")
    assert result.code == 1
    assert "it is a lambda" in result.err
    assert "register_encoder" not in result.err  # registering `function` would be wrong
    assert "inside the task" in result.err


def test_catalog_lint_reports_missing_variables_and_the_rest(merkl_globals, monkeypatch):
    monkeypatch.delenv("MERLIN_URL", raising=False)
    path = merkl_globals / "r.yaml"
    path.write_text(
        VALID.replace("https://merlin.example.com/api/merlin", "${MERLIN_URL}").replace(
            "format: ndjson", "format: csv"
        )
    )
    result = run_cli("catalog", "lint", str(path))
    assert result.code == 1
    assert "environment variables not set: MERLIN_URL (line 7)" in result.out
    assert "sink 'file': config.format" in result.out  # checked although a variable is missing
    assert "failed  staging-models (" in result.out
    assert "2 errors" in result.out


def test_small_scalar_arguments_are_logged_for_why_and_show(project):
    assert run_cli("run", "p.pipe", "3").code == 0
    why = run_cli("why", "p.pipe", "4")
    assert why.code == 0, why.err
    assert "argument 'a' changed: 3 → 4" in why.out
    output = run_cli("log", "--json").out
    import json

    shown = run_cli("show", json.loads(output)[0]["output"])
    assert shown.code == 0, shown.err
    assert "a: value 3" in shown.out
    assert "b: value 2" in shown.out


def test_long_strings_are_logged_by_hash_only(project):
    assert run_cli("run", "p.concat", "'" + "x" * 200 + "'", "'y'").code == 0
    why = run_cli("why", "p.concat", "'z'", "'y'")
    assert why.code == 0, why.err
    assert "argument 'a' changed: now 'z'" in why.out
