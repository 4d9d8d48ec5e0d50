"""The merlin source end to end against a fake Merlin on loopback, compared with golden files.

The fake serves tests/catalog/testdata/merlin/: three projects (one without models, one with
null labels and administrators), a traffic split, a custom and two standard transformers with
feature table specs, a model deployed in two environments (one endpoint terminated), a model
without endpoints, a null rule, a null version endpoint, and timestamps with every fraction
length and offset. Only requests carrying the token from the loopback token endpoint succeed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.catalog.fake_merlin import (
    BASE_PATH,
    GOLDEN,
    TESTDATA,
    USERINFO_EMAIL_SCOPE,
    TokenEndpoint,
    merlin_path,
    read_ndjson,
    requests_to,
    serve_merlin,
    write_recipe,
)
from tests.helpers import CliResult, run_cli


def _compare_golden(actual: str, golden: Path, update: bool) -> None:
    if update:
        golden.write_text(actual)
    assert actual == golden.read_text(), (
        f"differs from {golden.name}; review, then --update-golden"
    )


def _run(recipe: Path, key_b64: str, monkeypatch: pytest.MonkeyPatch) -> CliResult:
    monkeypatch.setenv("MERLIN_KEY", key_b64)
    return run_cli("catalog", "run", str(recipe))


@pytest.fixture
def merlin(httpserver: HTTPServer, token_endpoint: TokenEndpoint) -> HTTPServer:
    serve_merlin(httpserver, token_endpoint)
    return httpserver


def test_worker_count_1_emits_api_order_exactly_as_golden(
    merlin, token_endpoint, service_account_b64, merkl_globals, monkeypatch, update_golden
):
    recipe = write_recipe(
        merkl_globals, url=merlin.url_for(BASE_PATH), key_b64=service_account_b64
    )

    result = _run(recipe, service_account_b64, monkeypatch)

    assert result.code == 0, result.err
    _compare_golden(
        (merkl_globals / "assets.ndjson").read_text(), GOLDEN / "merlin.ndjson", update_golden
    )
    assert "merlin-test" in result.err
    assert "success" in result.err
    # The access token was asked for once, with the userinfo.email scope.
    assert len(token_endpoint.calls) == 1
    assert token_endpoint.calls[0]["scope"] == USERINFO_EMAIL_SCOPE


def test_five_workers_give_the_same_assets_sharing_one_token(
    merlin, token_endpoint, service_account_b64, merkl_globals, monkeypatch
):
    recipe = write_recipe(
        merkl_globals, url=merlin.url_for(BASE_PATH), key_b64=service_account_b64, worker_count=5
    )

    result = _run(recipe, service_account_b64, monkeypatch)

    assert result.code == 0, result.err
    produced = sorted((merkl_globals / "assets.ndjson").read_text().splitlines())
    expected = sorted((GOLDEN / "merlin.ndjson").read_text().splitlines())
    assert produced == expected
    assert len(token_endpoint.calls) == 1


def test_calls_are_the_three_gets_with_one_version_call_per_destination(
    merlin, service_account_b64, merkl_globals, monkeypatch
):
    recipe = write_recipe(
        merkl_globals, url=merlin.url_for(BASE_PATH), key_b64=service_account_b64
    )

    assert _run(recipe, service_account_b64, monkeypatch).code == 0

    paths = [request.path for request, _ in merlin.log if request.path != "/token"]
    assert all(
        request.method == "GET" and not request.query_string
        for request, _ in merlin.log
        if request.path != "/token"
    )
    assert requests_to(merlin, merlin_path("projects")) == 1
    # Version 5 is routed by two endpoints: fetched twice, no de-duplication.
    assert requests_to(merlin, merlin_path("models/12/versions/5")) == 2
    # The mirror (version 99) and the endpoint-less model are never asked about.
    assert not any("/99" in p or "/models/11/" in p for p in paths)
    assert len(paths) == 1 + 3 + 2 + 2 + 1


def test_yaml_format_golden(
    merlin, service_account_b64, merkl_globals, monkeypatch, update_golden
):
    recipe = write_recipe(
        merkl_globals,
        url=merlin.url_for(BASE_PATH),
        key_b64=service_account_b64,
        sinks="  - name: file\n    config: {path: ./assets.yaml, format: yaml}\n",
    )

    assert _run(recipe, service_account_b64, monkeypatch).code == 0

    text = (merkl_globals / "assets.yaml").read_text()
    _compare_golden(text, GOLDEN / "merlin.yaml", update_golden)
    import yaml

    assert yaml.safe_load(text) == read_ndjson(GOLDEN / "merlin.ndjson")


def test_spec_example_is_reproduced_byte_for_byte(
    httpserver, token_endpoint, service_account_b64, merkl_globals, monkeypatch
):
    """The full example of spec §5: a model deployed in two environments."""
    serve_merlin(httpserver, token_endpoint, data_dir=TESTDATA / "spec_example")
    recipe = write_recipe(
        merkl_globals, url=httpserver.url_for(BASE_PATH), key_b64=service_account_b64
    )

    assert _run(recipe, service_account_b64, monkeypatch).code == 0

    (line,) = (merkl_globals / "assets.ndjson").read_text().splitlines()
    expected = json.loads((GOLDEN / "spec_example.json").read_text())
    # Same values and the same key order (proto field order, sorted maps).
    assert line == json.dumps(expected, separators=(",", ":"))


def test_output_does_not_depend_on_the_local_time_zone(
    merlin, service_account_b64, merkl_globals, monkeypatch
):
    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    time.tzset()
    try:
        recipe = write_recipe(
            merkl_globals, url=merlin.url_for(BASE_PATH), key_b64=service_account_b64
        )
        assert _run(recipe, service_account_b64, monkeypatch).code == 0
    finally:
        monkeypatch.undo()
        time.tzset()
    assert (merkl_globals / "assets.ndjson").read_text() == (GOLDEN / "merlin.ndjson").read_text()


def test_console_sink_prints_the_same_lines_on_stdout(
    merlin, service_account_b64, merkl_globals, monkeypatch
):
    recipe = write_recipe(
        merkl_globals,
        url=merlin.url_for(BASE_PATH),
        key_b64=service_account_b64,
        sinks="  - name: console\n",
    )

    result = _run(recipe, service_account_b64, monkeypatch)

    assert result.code == 0, result.err
    assert result.out == (GOLDEN / "merlin.ndjson").read_text()


def test_url_without_scheme_and_with_query_string(
    merlin, service_account_b64, merkl_globals, monkeypatch
):
    """`host:port/path/` gets http://, slashes collapse, and the query rides along (spec §1)."""
    base = merlin.url_for(BASE_PATH).replace("http://localhost", "127.0.0.1")
    base = base.replace("/api/merlin", "/api//merlin/")
    recipe = write_recipe(merkl_globals, url=f"'{base}?tenant=a'", key_b64=service_account_b64)

    result = _run(recipe, service_account_b64, monkeypatch)

    assert result.code == 0, result.err
    gets = [r for r, _ in merlin.log if r.path != "/token"]
    assert {r.query_string for r in gets} == {b"tenant=a"}
    assert (merkl_globals / "assets.ndjson").read_text() == (GOLDEN / "merlin.ndjson").read_text()
