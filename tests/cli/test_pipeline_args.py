"""Unannotated pipeline parameters take Python literals; --fill-missing explains itself."""

from __future__ import annotations

from tests.helpers import import_fresh, run_cli


def test_unannotated_argument_is_a_python_literal(project):
    result = run_cli("run", "p.pipe", "3")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == "5"
    assert run_cli("run", "p.concat", "[1, 2]", "[3]").out.splitlines()[-1] == "[1, 2, 3]"


def test_text_that_is_no_literal_stays_a_string(project):
    result = run_cli("run", "p.concat", "abc", "'def'")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == "'abcdef'"
    quoted = run_cli("run", "p.concat", "'3'", "'4'")
    assert quoted.out.splitlines()[-1] == "'34'"


def test_cli_and_python_share_the_cache(project):
    p = import_fresh(project, "p")

    first = run_cli("run", "p.pipe", "3")
    assert "1 task(s) run" in first.err
    assert p.pipe(3).get() == 5
    assert "0 task(s) run" in run_cli("run", "p.typed", "3").err  # same call, same hash


def test_fill_missing_with_unannotated_parameters(project):
    result = run_cli("run", "--dry", "--fill-missing", "p.pipe")
    assert result.code == 0, result.err
    assert "argument a  missing-argument" in result.out
    assert "value converter" not in result.err


def test_fill_missing_arithmetic_says_the_argument_is_missing(project):
    result = run_cli("run", "--dry", "--fill-missing", "p.plain")
    assert result.code == 1
    assert "pipeline argument 'a' was not given" in result.err
    assert ".get()" not in result.err
    assert "Traceback" not in result.err


def test_dag_and_why_use_the_same_parsing(project):
    assert run_cli("run", "p.pipe", "3").code == 0
    why = run_cli("why", "p.pipe", "3")
    assert why.code == 0, why.err
    assert "nothing to compute" in why.out or "cached" in why.out
