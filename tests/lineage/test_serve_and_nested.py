"""`merkl serve` requests and evaluations nested in a task body are reported too."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

import merkl.lineage
from merkl.serve import ServeConfig, create_app
from tests.helpers import import_fresh, write_module
from tests.lineage.test_run_events import by_job, make_repo

NESTED = """
from merkl import task

@task
def inner(x):
    return x * 3

@task
def outer(x):
    return inner(x).get() + 1
"""


@pytest.fixture
def configured(receiver, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    merkl.lineage.reset()
    return receiver


def test_a_serve_request_is_a_pipeline_run_named_by_its_target(merkl_globals, configured):
    make_repo(merkl_globals)
    import_fresh(merkl_globals, "pipe")
    with TestClient(create_app(ServeConfig(targets=("pipe.pipeline",)))) as client:
        response = client.post("/v1/run/pipe.pipeline", json={"args": [], "kwargs": {}})
    assert response.status_code == 200, response.text
    assert merkl.lineage.flush(10)
    jobs = by_job(configured.checked())
    assert set(jobs) == {"pipe.pipeline", "pipe.count", "pipe.double"}
    assert [e["eventType"] for e in jobs["pipe.pipeline"]] == ["START", "COMPLETE"]


def test_a_nested_evaluation_reports_to_the_outer_run(merkl_globals, configured):
    make_repo(merkl_globals)
    write_module(merkl_globals, "nest", NESTED)
    nest = import_fresh(merkl_globals, "nest")
    assert nest.outer(2).get() == 7
    assert merkl.lineage.flush(10)
    jobs = by_job(configured.checked())
    assert set(jobs) == {"evaluate:nest.outer", "nest.outer", "nest.inner"}  # one pipeline run
    run_id = jobs["evaluate:nest.outer"][0]["run"]["runId"]
    for name in ("nest.outer", "nest.inner"):
        assert [e["eventType"] for e in jobs[name]] == ["START", "COMPLETE"]
        assert {e["run"]["facets"]["parent"]["run"]["runId"] for e in jobs[name]} == {run_id}
