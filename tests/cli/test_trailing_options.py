"""Options of `merkl run`, `dag` and `why` written after TARGET (git users put them anywhere)."""

from __future__ import annotations

import json

from tests.helpers import run_cli


def test_dag_format_after_target(project):
    before = run_cli("dag", "-f", "json", "p.pipe", "3")
    after = run_cli("dag", "p.pipe", "3", "-f", "json")
    assert after.code == 0, after.err
    assert after.out == before.out
    json.loads(after.out)


def test_dag_output_after_target_writes_the_file(project):
    result = run_cli("dag", "p.pipe", "3", "-o", "dag.txt")
    assert result.code == 0, result.err
    assert "p.add" in (project / "dag.txt").read_text()
    assert result.out == ""


def test_run_options_after_target(project):
    result = run_cli("run", "p.pipe", "3", "--dry")
    assert result.code == 0, result.err
    assert "p.add  missing" in result.out
    assert not run_cli("log").out.count("p.add")  # nothing ran
    jobs = run_cli("run", "p.pipe", "3", "--executor", "threads", "-j", "2")
    assert jobs.code == 0, jobs.err
    assert jobs.out.splitlines()[-1] == "5"


def test_why_json_after_target(project):
    result = run_cli("why", "p.pipe", "3", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)[0]["reasons"][0]["kind"] == "never-run"


def test_equals_form_after_target(project):
    result = run_cli("dag", "p.pipe", "3", "--format=json")
    assert result.code == 0, result.err
    json.loads(result.out)


def test_the_pipelines_own_parameter_wins_and_merkl_says_so(project):
    # p.formats has a parameter `format`: `--format tsv` after TARGET is the pipeline's.
    result = run_cli("dag", "p.formats", "1", "--format", "tsv")
    assert result.code == 0, result.err
    assert "'tsv'" in result.out or "tsv" in result.out
    assert "--format after p.formats is the pipeline's own parameter" in result.err
    assert "put merkl's --format before p.formats" in result.err
    # Before TARGET it is merkl's.
    before = run_cli("dag", "--format", "json", "p.formats", "1", "--format", "tsv")
    assert before.code == 0, before.err
    json.loads(before.out)


def test_double_dash_hands_everything_after_it_to_the_pipeline(project):
    result = run_cli("run", "p.pipe", "--", "3", "--dry")
    assert result.code == 2  # `--dry` is the pipeline's, and it has no such option
    assert "Usage: merkl run p.pipe" in result.err


def test_value_option_without_value_after_target_is_one_line(project):
    result = run_cli("dag", "p.pipe", "3", "-f")
    assert result.code == 2
    assert result.err.count("\n") <= 2
    assert "-f" in result.err
