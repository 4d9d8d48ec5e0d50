"""The run pipeline: setup before extraction, processors, sink retries and failure reporting."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from merkl.catalog.runner import RunOptions, run_recipe_file, run_recipe_files
from tests.catalog.plugins import RecordingSink

FAST = RunOptions(max_retries=2, retry_initial_s=0.001, environ={})


@pytest.fixture(autouse=True)
def _reset_recording_sink():
    RecordingSink.received.clear()
    RecordingSink.events.clear()


def recipe(
    folder: Path,
    *,
    source: str = "{count: 3}",
    processors: str = "",
    sinks: str = "  - name: tests.catalog.plugins:RecordingSink\n",
    name: str = "r",
) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        "version: v1beta1\n"
        "source:\n  name: tests.catalog.plugins:CountingSource\n  scope: s\n"
        f"  config: {source}\n"
        + (f"processors:\n{textwrap.dedent(processors)}" if processors else "")
        + f"sinks:\n{sinks}"
    )
    return path


def test_records_flow_to_every_sink_and_are_counted(merkl_globals):
    sinks = (
        "  - name: tests.catalog.plugins:RecordingSink\n"
        "  - name: file\n    config: {path: ./all.ndjson, format: ndjson}\n"
    )
    result = run_recipe_file(recipe(merkl_globals, sinks=sinks), FAST)
    assert result.success, result.error
    assert result.record_count == 3
    assert RecordingSink.received == [
        "urn:test:s:thing:0",
        "urn:test:s:thing:1",
        "urn:test:s:thing:2",
    ]
    assert len((merkl_globals / "all.ndjson").read_text().splitlines()) == 3
    assert [(s.name, s.delivered, s.dropped) for s in result.sinks] == [
        ("recording", 3, 0),
        ("file", 3, 0),
    ]


def test_retryable_sink_failures_are_retried_with_backoff(merkl_globals):
    sinks = (
        "  - name: tests.catalog.plugins:RecordingSink\n    config: {failures: [retry, retry]}\n"
    )
    result = run_recipe_file(recipe(merkl_globals, sinks=sinks), FAST)
    assert result.success, result.error
    assert result.sinks[0].retries == 2
    assert len(RecordingSink.received) == 3


def test_a_sink_giving_up_drops_the_record_reports_it_and_fails_the_recipe(merkl_globals):
    sinks = (
        "  - name: tests.catalog.plugins:RecordingSink\n"
        "    config: {failures: [retry, retry, retry, fail]}\n"
        "  - name: file\n    config: {path: ./all.ndjson, format: ndjson}\n"
    )
    result = run_recipe_file(recipe(merkl_globals, sinks=sinks), FAST)
    assert result.record_count == 3  # extraction went on
    assert RecordingSink.received == ["urn:test:s:thing:2"]
    report = result.sinks[0]
    assert (report.dropped, report.delivered, report.retries) == (2, 1, 2)
    assert result.error == (
        "sink 'recording' dropped 2 of 3 records: recording sink: try again (after 2 retries)"
    )
    # Extraction itself succeeded, and the other sink got everything.
    assert result.sinks[1].delivered == 3
    assert not (merkl_globals / "all.ndjson").exists()  # a failed recipe leaves no file


def test_stop_on_sink_error_stops_the_run(merkl_globals):
    sinks = "  - name: tests.catalog.plugins:RecordingSink\n    config: {failures: [fail]}\n"
    options = RunOptions(max_retries=0, retry_initial_s=0, stop_on_sink_error=True, environ={})
    result = run_recipe_file(recipe(merkl_globals, sinks=sinks), options)
    assert result.error == "sink 'recording': recording sink: refused"
    assert result.record_count == 1
    assert RecordingSink.events == ["abort"]


def test_processor_failure_fails_the_run(merkl_globals):
    processors = "  - name: tests.catalog.plugins:FailingProcessor\n    config: {fail_after: 1}\n"
    result = run_recipe_file(recipe(merkl_globals, processors=processors), FAST)
    assert result.error == "emitter: error running processor 'failing': cannot process thing"
    assert result.record_count == 1
    assert RecordingSink.events == ["abort"]


def test_source_failure_is_reported_and_sinks_are_aborted(merkl_globals):
    result = run_recipe_file(recipe(merkl_globals, source="{count: 5, fail_after: 2}"), FAST)
    assert result.error == (
        "failed to run extractor: error running extractor 'counting': "
        "counting source broke after 2 assets"
    )
    assert result.record_count == 2
    assert RecordingSink.events == ["abort"]


def test_setup_failure_runs_nothing(merkl_globals):
    sinks = (
        "  - name: tests.catalog.plugins:RecordingSink\n"
        "  - name: file\n    config: {path: ./missing-dir/out.ndjson, format: ndjson}\n"
    )
    result = run_recipe_file(recipe(merkl_globals, sinks=sinks), FAST)
    assert result.error.startswith("failed to setup sink 'file': file sink: directory ")
    assert result.record_count == 0
    assert RecordingSink.received == []
    assert RecordingSink.events == ["abort"]


def test_close_failure_fails_the_recipe_and_aborts_the_rest(merkl_globals):
    sinks = (
        "  - name: file\n    config: {path: ./all.ndjson, format: ndjson}\n"
        "  - name: tests.catalog.plugins:RecordingSink\n    config: {fail_on_close: true}\n"
    )
    result = run_recipe_file(recipe(merkl_globals, sinks=sinks), FAST)
    assert result.error == "failed to close sink 'recording': could not flush"
    assert not (merkl_globals / "all.ndjson").exists()


def test_several_recipes_run_and_report_in_order(merkl_globals):
    paths = [
        recipe(merkl_globals, name="one"),
        recipe(merkl_globals, name="two", source="{count: 1, fail_after: 0}"),
        merkl_globals / "three.yaml",
    ]
    paths[2].write_text("version: v2\n")
    results = run_recipe_files(paths, FAST)
    assert [(r.recipe, r.success, r.record_count) for r in results] == [
        ("one", True, 3),
        ("two", False, 0),
        ("three", False, 0),
    ]
    assert "recipe version is invalid or not found" in results[2].error


def test_an_interrupted_run_leaves_no_temporary_file(merkl_globals, monkeypatch):
    from tests.catalog import plugins

    def interrupt(self, emit):
        emit(plugins.make_asset(urn="u", name="n", service="s", asset_type="t"))
        raise KeyboardInterrupt

    monkeypatch.setattr(plugins.CountingSource, "extract", interrupt)
    sinks = "  - name: file\n    config: {path: ./all.ndjson, format: ndjson}\n"
    with pytest.raises(KeyboardInterrupt):
        run_recipe_file(recipe(merkl_globals, sinks=sinks), FAST)
    assert [p.name for p in merkl_globals.iterdir()] == ["r.yaml"]
