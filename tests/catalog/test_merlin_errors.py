"""Every row of spec §3.4: what each Merlin failure does to the run."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from merkl.catalog.plugin import PluginContext, RetryableError
from merkl.catalog.sources.merlin import MerlinConfig, MerlinSource
from merkl.errors import ExtractError
from tests.catalog.fake_merlin import (
    BASE_PATH,
    MERLIN_DATA,
    merlin_path,
    requests_to,
    serve_merlin,
    write_recipe,
)
from tests.helpers import run_cli


def make_source(url: str, key_b64: str, **config) -> tuple[MerlinSource, PluginContext]:
    ctx = PluginContext("errors", scope="test-merlin")
    settings = {"url": url, "service_account_base64": key_b64, "worker_count": 1, **config}
    cfg = MerlinConfig.model_validate(settings)
    return MerlinSource(cfg, ctx), ctx


def extract_all(source: MerlinSource) -> list[dict]:
    assets: list[dict] = []
    lock = threading.Lock()

    def emit(asset):
        with lock:
            assets.append(asset)

    try:
        source.extract(emit)
    finally:
        source.close()
    return assets


def urns(assets) -> list[str]:
    return [a["urn"].rsplit(":", 1)[1] for a in assets]


def modified(name: str, change) -> str:
    """The testdata file `name` after `change(data)`, as JSON text."""
    data = json.loads((MERLIN_DATA / f"{name}.json").read_text())
    change(data)
    return json.dumps(data)


@pytest.fixture
def base_url(httpserver: HTTPServer) -> str:
    return httpserver.url_for(BASE_PATH)


# -- the projects call fails: the extraction fails, retryable only for deadline / 5xx / 429 ----


@pytest.mark.parametrize(
    ("status", "content_type", "body", "message", "is_retryable"),
    [
        (503, "application/json; charset=UTF-8", '{"error": "db is down"}', "db is down", True),
        (429, "application/json", '{"error": "slow down"}', "slow down", True),
        (500, "application/problem+json", '{"error": "boom", "x": 1}', "boom", True),
        (502, "application/json", "<html>bad gateway</html>", "<html>bad gateway</html>", True),
        (404, "text/plain", "no such route", "no such route", False),
        (403, "application/json", '{"message": "no error field"}', "", False),
        (
            401,
            "text/html",
            '{"error": "not read: not a JSON type"}',
            '{"error": "not read: not a JSON type"}',
            False,
        ),
    ],
)
def test_projects_call_failure_fails_extraction(
    httpserver, base_url, service_account_b64, status, content_type, body, message, is_retryable
):
    httpserver.expect_request(merlin_path("projects")).respond_with_data(
        body, status=status, content_type=content_type
    )
    source, _ctx = make_source(base_url, service_account_b64)

    with pytest.raises((RetryableError, ExtractError)) as caught:
        extract_all(source)

    assert isinstance(caught.value, RetryableError) is is_retryable
    assert str(caught.value) == (
        f"merlin client: fetch projects: [GET]: {base_url}/v1/projects: "
        f"unexpected response status '{status}': {message}"
    )


def test_projects_call_timeout_is_retryable(httpserver, base_url, service_account_b64):
    def slow(_request: Request) -> Response:
        time.sleep(0.6)
        return Response("[]", content_type="application/json")

    httpserver.expect_request(merlin_path("projects")).respond_with_handler(slow)
    source, _ctx = make_source(base_url, service_account_b64, request_timeout="150ms")

    started = time.monotonic()
    with pytest.raises(RetryableError, match="context deadline exceeded") as caught:
        extract_all(source)

    assert time.monotonic() - started < 0.55
    assert "request_timeout 150ms" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<html>this is not json</html>", "decode response: "),
        ('{"projects": []}', "cannot unmarshal object into Go value of type []merlin.Project"),
        (
            '[{"id": "1", "name": "alpha"}]',
            "cannot unmarshal string into Go struct field Project.id",
        ),
        ('[{"id": 1.5}]', "cannot unmarshal number 1.5 into Go struct field Project.id"),
        ('[{"id": 1, "labels": [{"key": 3}]}]', "Go struct field Label.key of type string"),
    ],
)
def test_projects_response_that_go_cannot_decode_fails(
    httpserver, base_url, service_account_b64, body, expected
):
    httpserver.expect_request(merlin_path("projects")).respond_with_data(
        body, content_type="application/json"
    )
    source, _ctx = make_source(base_url, service_account_b64)

    with pytest.raises(ExtractError) as caught:
        extract_all(source)

    assert not isinstance(caught.value, RetryableError)
    assert str(caught.value).startswith("merlin client: fetch projects: decode response: ")
    assert expected in str(caught.value)


def test_unreachable_server_fails_once_without_retry(
    service_account_b64, merkl_globals, monkeypatch
):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recipe = write_recipe(
        merkl_globals, url=f"http://127.0.0.1:{port}/merlin", key_b64=service_account_b64
    )
    monkeypatch.setenv("MERLIN_KEY", service_account_b64)

    result = run_cli("catalog", "run", str(recipe), "--retry-initial", "0")

    assert result.code == 1
    assert (
        f"failed to run extractor: error running extractor 'merlin': merlin client: fetch "
        f"projects: execute request: GET http://127.0.0.1:{port}/merlin/v1/projects: "
    ) in result.err
    assert "retrying" not in result.err
    assert not (merkl_globals / "assets.ndjson").exists()


def test_retryable_projects_failure_is_retried_then_reported(
    httpserver, base_url, service_account_b64, merkl_globals, monkeypatch
):
    httpserver.expect_request(merlin_path("projects")).respond_with_json(
        {"error": "maintenance"}, status=503
    )
    recipe = write_recipe(merkl_globals, url=base_url, key_b64=service_account_b64)
    monkeypatch.setenv("MERLIN_KEY", service_account_b64)

    result = run_cli(
        "catalog", "run", str(recipe), "--max-retries", "2", "--retry-initial", "0.01"
    )

    assert result.code == 1
    assert requests_to(httpserver, merlin_path("projects")) == 3
    assert "retryable; gave up after 2 retries" in result.err
    assert "unexpected response status '503': maintenance" in result.err


def test_retryable_projects_failure_recovers_on_retry(
    httpserver, token_endpoint, base_url, service_account_b64, merkl_globals, monkeypatch
):
    serve_merlin(httpserver, token_endpoint, skip=("projects",))
    attempts = []
    projects = (MERLIN_DATA / "projects.json").read_text()

    def flaky(_request: Request) -> Response:
        attempts.append(1)
        if len(attempts) == 1:
            return Response('{"error": "busy"}', status=429, content_type="application/json")
        return Response(projects, content_type="application/json")

    httpserver.expect_request(merlin_path("projects")).respond_with_handler(flaky)
    recipe = write_recipe(merkl_globals, url=base_url, key_b64=service_account_b64)
    monkeypatch.setenv("MERLIN_KEY", service_account_b64)

    result = run_cli("catalog", "run", str(recipe), "--retry-initial", "0.01")

    assert result.code == 0, result.err
    assert "extraction failed, retrying" in result.err
    assert len((merkl_globals / "assets.ndjson").read_text().splitlines()) == 4


# -- a models call fails: that project is skipped, the run goes on ----------------------------


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (
            '{"error": "project is archived"}',
            500,
            "unexpected response status '500': project is archived",
        ),
        ("not json at all", 200, "decode response: "),
        (
            modified("models-1", lambda m: m[0].update(created_at="2021-03-01 18:42:50")),
            200,
            "parsing time '2021-03-01 18:42:50'",
        ),
        (
            modified("models-1", lambda m: m[2].update(updated_at="2022-02-30T00:00:00Z")),
            200,
            "day is out of range for month",
        ),
    ],
)
def test_models_call_failure_skips_only_that_project(
    httpserver, token_endpoint, base_url, service_account_b64, body, status, expected
):
    serve_merlin(httpserver, token_endpoint, skip=("models-1",))
    httpserver.expect_request(merlin_path("projects/1/models")).respond_with_data(
        body, status=status, content_type="application/json"
    )
    source, ctx = make_source(base_url, service_account_b64)

    assets = extract_all(source)

    assert urns(assets) == ["2.20"]
    (warning,) = ctx.warnings
    assert warning.startswith(
        "merlin extractor: project=1: merlin client: project ID '1': fetch models: "
    )
    assert expected in warning
    assert warning.endswith("(project skipped)")


# -- a version call fails: the model is skipped unless the same id was fetched elsewhere -------


def test_failed_version_call_skips_the_model(
    httpserver, token_endpoint, base_url, service_account_b64
):
    serve_merlin(httpserver, token_endpoint, skip=("version-10-3",))
    httpserver.expect_request(merlin_path("models/10/versions/3")).respond_with_json(
        {"error": "version not found"}, status=404
    )
    source, ctx = make_source(base_url, service_account_b64)

    assets = extract_all(source)

    assert urns(assets) == ["1.12", "1.13", "2.20"]
    fetch_warning, build_warning = ctx.warnings
    assert fetch_warning == (
        f"merlin extractor: project=1 model=10: merlin client: project ID '10': fetch version "
        f"'3': [GET]: {base_url}/v1/models/10/versions/3: unexpected response status '404': "
        "version not found"
    )
    assert build_warning == (
        "merlin extractor: project=1 model=10: build versions for model '10' in project '1': "
        "model version not found: 3 (model skipped)"
    )


def test_version_fetched_for_another_destination_keeps_the_model(
    httpserver, token_endpoint, base_url, service_account_b64
):
    serve_merlin(httpserver, token_endpoint, skip=("version-12-5",))
    calls = []
    body = (MERLIN_DATA / "version-12-5.json").read_text()

    def first_call_fails(_request: Request) -> Response:
        calls.append(1)
        if len(calls) == 1:
            return Response("upstream reset", status=502)
        return Response(body, content_type="application/json")

    httpserver.expect_request(merlin_path("models/12/versions/5")).respond_with_handler(
        first_call_fails
    )
    source, ctx = make_source(base_url, service_account_b64)

    assets = extract_all(source)

    assert urns(assets) == ["1.10", "1.12", "1.13", "2.20"]
    assert len(calls) == 2
    (warning,) = ctx.warnings
    assert "unexpected response status '502': upstream reset" in warning


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda v: v.update(labels={"env": "staging", "replicas": 3}),
            "cannot unmarshal number 3 into Go struct field ModelVersion.labels of type string",
        ),
        (lambda v: v.update(created_at="2022-10-28T06:11:52Z07:00"), "not an RFC 3339 timestamp"),
        (lambda v: v.update(id="3"), "Go struct field ModelVersion.id of type int64"),
    ],
)
def test_version_response_go_cannot_decode_skips_the_model(
    httpserver, token_endpoint, base_url, service_account_b64, change, expected
):
    serve_merlin(httpserver, token_endpoint, skip=("version-10-3",))
    httpserver.expect_request(merlin_path("models/10/versions/3")).respond_with_data(
        modified("version-10-3", change), content_type="application/json"
    )
    source, ctx = make_source(base_url, service_account_b64)

    assets = extract_all(source)

    assert "1.10" not in urns(assets)
    assert len(assets) == 3
    assert expected in ctx.warnings[0]
    assert ctx.warnings[1].endswith("model version not found: 3 (model skipped)")


# -- bad FEAST_FEATURE_TABLE_SPECS_JSONS: the model is skipped --------------------------------


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        ("name: driver\nproject: jaeger", "decode FEAST_FEATURE_TABLE_SPECS_JSONS: "),
        ('[{"name": 7, "project": "jaeger"}]', "FeatureTableMetadata.name of type string"),
        (
            '{"name": "driver"}',
            "cannot unmarshal object into Go value of type []FeatureTableMetadata",
        ),
    ],
)
def test_bad_feature_table_specs_skip_the_model(
    httpserver, token_endpoint, base_url, service_account_b64, specs, expected
):
    def break_specs(models):
        env = models[2]["endpoints"][0]["rule"]["destinations"][0]["version_endpoint"][
            "transformer"
        ]["env_vars"]
        env[1]["value"] = specs

    serve_merlin(httpserver, token_endpoint, skip=("models-1",))
    httpserver.expect_request(merlin_path("projects/1/models")).respond_with_data(
        modified("models-1", break_specs), content_type="application/json"
    )
    source, ctx = make_source(base_url, service_account_b64)

    assets = extract_all(source)

    assert urns(assets) == ["1.10", "1.13", "2.20"]
    (warning,) = ctx.warnings
    assert warning.startswith(
        "merlin extractor: project=1 model=12: build lineage for model '12' in project '1': "
        "build upstreams: "
    )
    assert expected in warning
    assert warning.endswith("(model skipped)")


def test_null_feature_table_specs_mean_no_upstreams(
    httpserver, token_endpoint, base_url, service_account_b64
):
    def null_specs(models):
        for endpoint in models[2]["endpoints"]:
            for var in endpoint["rule"]["destinations"][0]["version_endpoint"]["transformer"][
                "env_vars"
            ]:
                if var["name"] == "FEAST_FEATURE_TABLE_SPECS_JSONS":
                    var["value"] = "null"

    serve_merlin(httpserver, token_endpoint, skip=("models-1",))
    httpserver.expect_request(merlin_path("projects/1/models")).respond_with_data(
        modified("models-1", null_specs), content_type="application/json"
    )
    source, ctx = make_source(base_url, service_account_b64)

    assets = extract_all(source)

    assert not ctx.warnings
    assert assets[1]["lineage"] == {"upstreams": [], "downstreams": []}


# -- an unexpected error inside a worker fails the extraction and abandons the rest ----------


def test_unexpected_error_in_a_worker_is_fatal_and_cancels_the_rest(
    httpserver, token_endpoint, base_url, service_account_b64
):
    serve_merlin(httpserver, token_endpoint)
    source, _ctx = make_source(base_url, service_account_b64, worker_count=1)

    def emit(_asset):
        raise RuntimeError("sink exploded")

    with pytest.raises(ExtractError) as caught:
        source.extract(emit)
    source.close()

    assert str(caught.value) == "extract project '1': panic: sink exploded"
    assert isinstance(caught.value.__cause__, RuntimeError)
    # Projects 2 and 3 were never started.
    assert requests_to(httpserver, merlin_path("projects/2/models")) == 0
    assert requests_to(httpserver, merlin_path("projects/3/models")) == 0


def test_projects_without_models_or_endpoints_still_succeed(
    httpserver, token_endpoint, base_url, service_account_b64
):
    serve_merlin(httpserver, token_endpoint, skip=("models-1", "models-2"))
    httpserver.expect_request(merlin_path("projects/1/models")).respond_with_json([])
    httpserver.expect_request(merlin_path("projects/2/models")).respond_with_json(
        [{"id": 1, "name": "idle", "endpoints": None}]
    )
    source, ctx = make_source(base_url, service_account_b64)

    assert extract_all(source) == []
    assert ctx.warnings == []


def test_written_file_is_left_alone_when_the_run_fails(
    httpserver, base_url, service_account_b64, merkl_globals, monkeypatch
):
    (merkl_globals / "assets.ndjson").write_text("previous run\n")
    httpserver.expect_request(merlin_path("projects")).respond_with_data("nope", status=400)
    recipe = write_recipe(merkl_globals, url=base_url, key_b64=service_account_b64)
    monkeypatch.setenv("MERLIN_KEY", service_account_b64)

    result = run_cli("catalog", "run", str(recipe))

    assert result.code == 1
    assert (merkl_globals / "assets.ndjson").read_text() == "previous run\n"
    assert [p.name for p in Path(merkl_globals).iterdir() if p.name.startswith(".assets")] == []
