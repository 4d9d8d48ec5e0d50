"""`merkl catalog run | lint | list | info | gen` as a user calls them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.catalog.test_recipe import VALID
from tests.catalog.test_runner import recipe
from tests.helpers import run_cli


def test_list_shows_every_kind():
    result = run_cli("catalog", "list")
    assert result.code == 0
    rows = [line.split()[:2] for line in result.out.splitlines()[1:]]
    assert ["source", "merlin"] in rows
    assert ["processor", "labels"] in rows
    assert {"compass", "console", "file", "http"} <= {
        name for kind, name in rows if kind == "sink"
    }


def test_info_shows_config_and_sample():
    result = run_cli("catalog", "info", "merlin")
    assert result.code == 0
    assert "merlin (source): Machine learning models deployed on Merlin" in result.out
    assert "  url (string, required)" in result.out
    assert "  request_timeout (duration, optional, default 10s)" in result.out
    assert "  worker_count (int, optional, default 5)" in result.out
    assert "sample config:\n# Merlin's API base URL" in result.out


def test_info_unknown_plugin():
    result = run_cli("catalog", "info", "nosuch")
    assert result.code == 1
    assert result.err.startswith("merkl: error: no catalog plugin named 'nosuch'; known: ")


def test_gen_writes_a_recipe_that_lints_clean(merkl_globals):
    result = run_cli(
        "catalog",
        "gen",
        "merlin",
        "console",
        "file",
        "--processors",
        "labels,enrich",
        "--name",
        "models",
        "--scope",
        "prod",
        "--output",
        "new.yaml",
    )
    assert result.code == 0, result.err
    text = (merkl_globals / "new.yaml").read_text()
    assert text.startswith(
        "name: models\nversion: v1beta1\nsource:\n  name: merlin\n  scope: prod\n"
    )
    lint = run_cli("catalog", "lint", "new.yaml")
    assert lint.code == 0, lint.out
    again = run_cli("catalog", "gen", "merlin", "console", "--output", "new.yaml")
    assert again.code == 1
    assert "'new.yaml' exists" in again.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("merlin", "nosink"), "no catalog sink named 'nosink'"),
        (("merlin",), "a recipe needs at least one sink"),
        (("console", "file"), "no catalog source named 'console'"),
    ],
)
def test_gen_errors(argv, message):
    result = run_cli("catalog", "gen", *argv)
    assert result.code == 1
    assert message in result.err


def test_lint_reports_each_problem_and_a_line_per_recipe(merkl_globals):
    folder = merkl_globals / "recipes"
    folder.mkdir()
    (folder / "good.yaml").write_text(VALID)
    (folder / "bad.yaml").write_text(
        VALID.replace("format: ndjson", "format: csv").replace("  scope: staging\n", "")
    )
    (folder / "old.yaml").write_text(VALID.replace("v1beta1", "v1"))

    result = run_cli("catalog", "lint", str(folder))

    assert result.code == 1
    lines = result.out.splitlines()
    assert f"{folder / 'bad.yaml'}:3: source 'merlin': urn scope is required" in lines[0]
    assert f"{folder / 'bad.yaml'}:16: sink 'file': config.format: " in lines[1]
    assert "recipe version is invalid or not found" in lines[2]
    assert "failed  staging-models" in result.out
    assert "ok      staging-models" in result.out
    assert "2 failing, 1 successful, and 3 total" in result.out
    assert "merkl: error: 2 of 3 recipes have problems" in result.err


def test_run_prints_a_summary_and_exits_0_only_if_all_succeeded(merkl_globals):
    ok = recipe(merkl_globals, name="ok")
    result = run_cli("catalog", "run", str(ok))
    assert result.code == 0, result.err
    assert result.out == ""
    header, row, total = [line.split() for line in result.err.splitlines()]
    assert header == ["Status", "Recipe", "Source", "Duration(ms)", "Records"]
    assert row[:3] == ["success", "ok", "tests.catalog.plugins:CountingSource"]
    assert row[4] == "3"
    assert total == ["0", "failing,", "1", "successful,", "and", "1", "total"]

    broken = recipe(merkl_globals, name="broken", source="{count: 2, fail_after: 1}")
    result = run_cli("catalog", "run", str(ok), str(broken))
    assert result.code == 1
    assert "broken: failed to run extractor: error running extractor 'counting'" in result.err
    assert "1 failing, 1 successful, and 2 total" in result.err
    assert result.err.rstrip().endswith(
        "merkl: error: 1 of 2 recipes failed; broken: failed to run extractor: error running "
        "extractor 'counting': counting source broke after 1 assets"
    )


def test_run_with_a_variables_file(merkl_globals):
    path = recipe(merkl_globals, name="vars", source="{count: {{ .n }}}")
    (merkl_globals / "values.yaml").write_text("n: 2\n")
    result = run_cli("catalog", "run", str(path), "--var", "values.yaml")
    assert result.code == 0, result.err
    assert "vars " in result.err
    assert " 2\n" in result.err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("run",), 2, "merkl: error: "),
        (("run", "missing.yaml"), 1, "no recipe file or directory 'missing.yaml'"),
        (
            ("run", "x.yaml", "--max-retries", "-1"),
            2,
            "--max-retries and --retry-initial must be >= 0",
        ),
        (("lint",), 2, "merkl: error: "),
    ],
)
def test_usage_errors(argv, code, message):
    result = run_cli("catalog", *argv)
    assert result.code == code
    assert message in result.err
    assert "Traceback" not in result.err


def test_help_documents_the_options():
    result = run_cli("catalog", "run", "--help")
    assert result.code == 0
    for option in ("--var", "--max-retries", "--retry-initial", "--stop-on-sink-error"):
        assert option in result.out


def test_example_recipes_lint_clean(monkeypatch):
    examples = Path(__file__).parents[2] / "examples" / "catalog"
    monkeypatch.setenv("MERLIN_URL", "https://merlin.example.com/api/merlin")
    monkeypatch.setenv("METEOR_MERLIN_URL", "https://merlin.example.com/api/merlin")
    monkeypatch.setenv("METEOR_COMPASS_HOST", "https://compass.example.com")
    result = run_cli("catalog", "lint", str(examples))
    assert result.code == 0, result.out
    assert "0 failing, 2 successful, and 2 total" in result.out
