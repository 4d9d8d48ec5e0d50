"""The built-in sinks and processors, each against the real thing (files, a loopback server)."""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from merkl.catalog.asset import make_asset, make_model, make_resource
from merkl.catalog.plugin import PluginContext, RetryableError
from merkl.catalog.processors.enrich import EnrichConfig, EnrichProcessor
from merkl.catalog.processors.labels import LabelsConfig, LabelsProcessor
from merkl.catalog.runner import RunOptions, run_recipe_file
from merkl.catalog.sinks.compass import CompassConfig, CompassSink
from merkl.catalog.sinks.file import FileConfig, FileSink
from merkl.catalog.sinks.http import HttpConfig, HttpSink
from merkl.errors import CatalogError
from tests.catalog.test_runner import recipe

CTX = PluginContext("sinks")


def asset(index: int = 1) -> dict:
    return make_asset(
        urn=f"urn:merlin:s:model:1.{index}",
        name=f"m{index}",
        service="merlin",
        asset_type="model",
        url="m.example.com",
        data=make_model(
            namespace="p",
            flavor="pyfunc",
            versions=[],
            attributes={"project_id": 1, "owner_team": "search"},
            create_time=None,
            update_time=None,
        ),
        upstreams=[
            make_resource(
                "urn:caramlstore:s:feature_table:a.b",
                service="caramlstore",
                resource_type="feature_table",
            )
        ],
        labels={"team": "search", "stream": "relevance"},
    )


# -- processors ---------------------------------------------------------------------------


def test_labels_processor_overwrites_and_keeps_keys_sorted():
    processor = LabelsProcessor(LabelsConfig(labels={"team": "ml", "a": 1}), CTX)
    assert processor.process(asset())["labels"] == {"a": "1", "stream": "relevance", "team": "ml"}


def test_enrich_processor_merges_string_attributes_only():
    ctx = PluginContext("enrich")
    config = EnrichConfig(attributes={"owner_team": "ml", "tier": "gold", "replicas": 3})
    processor = EnrichProcessor(config, ctx)
    attributes = processor.process(asset())["data"]["attributes"]
    assert attributes == {"owner_team": "ml", "project_id": 1, "tier": "gold"}
    assert list(attributes) == sorted(attributes)
    assert ctx.warnings == ["enrich: attributes replicas are not strings and are ignored"]
    with pytest.raises(CatalogError, match="has no data payload"):
        processor.process(make_asset(urn="u", name="n", service="s", asset_type="t"))


# -- file sink ---------------------------------------------------------------------------


def test_file_sink_appends_when_not_overwriting(merkl_globals):
    target = merkl_globals / "out.ndjson"
    target.write_text("earlier\n")
    sink = FileSink(FileConfig(path=str(target), format="ndjson", overwrite=False), CTX)
    sink.sink([asset(1)])
    assert target.read_text() == "earlier\n"  # nothing visible before the run ends
    sink.sink([asset(2)])
    sink.close()
    lines = target.read_text().splitlines()
    assert lines[0] == "earlier"
    assert [json.loads(x)["name"] for x in lines[1:]] == ["m1", "m2"]


def test_file_sink_overwrites_atomically_and_abort_keeps_the_old_file(merkl_globals):
    target = merkl_globals / "out.ndjson"
    target.write_text("earlier\n")
    aborted = FileSink(FileConfig(path=str(target), format="ndjson"), CTX)
    aborted.sink([asset()])
    aborted.abort()
    assert target.read_text() == "earlier\n"
    done = FileSink(FileConfig(path=str(target), format="ndjson"), CTX)
    done.sink([asset()])
    done.close()
    assert json.loads(target.read_text())["name"] == "m1"
    assert sorted(p.name for p in merkl_globals.iterdir()) == ["out.ndjson"]


def test_file_sink_yaml_is_one_list_across_batches(merkl_globals):
    import yaml

    target = merkl_globals / "out.yaml"
    sink = FileSink(FileConfig(path=str(target), format="yaml"), CTX)
    sink.sink([asset(1)])
    sink.sink([asset(2)])
    sink.close()
    assert [a["name"] for a in yaml.safe_load(target.read_text())] == ["m1", "m2"]


# -- http sink ---------------------------------------------------------------------------


def test_http_sink_sends_protojson_with_split_headers(httpserver: HTTPServer):
    httpserver.expect_request("/assets", method="PUT").respond_with_data("", status=201)
    config = HttpConfig(
        url=httpserver.url_for("/assets"),
        method="put",
        success_code=201,
        headers={"X-Team": "a, b", "Authorization": "Bearer t"},
    )
    sink = HttpSink(config, CTX)
    sink.sink([asset()])
    sink.close()
    ((request, _),) = httpserver.log
    # Two X-Team header lines, which WSGI joins with a comma (without the original space).
    assert request.headers["X-Team"] == "a,b"
    assert request.headers["Authorization"] == "Bearer t"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.data) == asset()


@pytest.mark.parametrize(("status", "error"), [(503, RetryableError), (404, CatalogError)])
def test_http_sink_failures(httpserver: HTTPServer, status, error):
    httpserver.expect_request("/assets").respond_with_data("nope", status=status)
    sink = HttpSink(HttpConfig(url=httpserver.url_for("/assets"), method="POST"), CTX)
    with pytest.raises(error, match=f"http returns {status}: nope"):
        sink.sink([asset()])
    sink.close()


def test_http_sink_5xx_is_retried_by_the_runner_until_it_succeeds(httpserver, merkl_globals):
    answers = iter([503, 502, 200, 200, 200])
    httpserver.expect_request("/assets", method="POST").respond_with_handler(
        lambda _request: Response("", status=next(answers))
    )
    sinks = (
        f"  - name: http\n    config: {{url: '{httpserver.url_for('/assets')}', method: POST}}\n"
    )
    result = run_recipe_file(
        recipe(merkl_globals, sinks=sinks),
        RunOptions(max_retries=3, retry_initial_s=0.001, environ={}),
    )
    assert result.success, result.error
    assert (result.sinks[0].delivered, result.sinks[0].retries) == (3, 2)
    assert len(httpserver.log) == 5


# -- compass sink ------------------------------------------------------------------------


def test_compass_sink_patches_the_asset_with_its_lineage(httpserver: HTTPServer):
    bodies = []

    def record(request: Request) -> Response:
        bodies.append(json.loads(request.data))
        return Response("{}", status=200)

    httpserver.expect_request("/v1beta1/assets", method="PATCH").respond_with_handler(record)
    config = CompassConfig(
        host=httpserver.url_for("/"),
        headers={"Compass-User-Email": "meteor@example.com"},
        labels={"owner": "$attributes.owner_team", "stream_copy": "$labels.stream"},
    )
    sink = CompassSink(config, CTX)
    sink.sink([asset()])
    sink.close()
    (body,) = bodies
    assert body["asset"]["urn"] == "urn:merlin:s:model:1.1"
    assert body["asset"]["data"]["@type"].endswith(".Model")
    assert body["asset"]["labels"] == {
        "owner": "search",
        "stream": "relevance",
        "stream_copy": "relevance",
        "team": "search",
    }
    assert body["upstreams"] == [
        {
            "urn": "urn:caramlstore:s:feature_table:a.b",
            "type": "feature_table",
            "service": "caramlstore",
        }
    ]
    assert body["downstreams"] == []
    assert httpserver.log[0][0].headers["Compass-User-Email"] == "meteor@example.com"


def test_compass_label_template_that_finds_nothing_is_an_error(httpserver: HTTPServer):
    config = CompassConfig(host=httpserver.url_for("/"), labels={"x": "$attributes.missing"})
    sink = CompassSink(config, CTX)
    with pytest.raises(CatalogError, match=r"label 'x': '\$attributes.missing' is missing"):
        sink.sink([asset()])
    sink.close()
    assert list(httpserver.log) == []


def test_compass_config_rejects_unknown_label_templates():
    with pytest.raises(ValueError, match=r"expected '\$attributes.<key>' or '\$labels.<key>'"):
        CompassConfig(host="https://compass.example.com", labels={"x": "$properties.a"})
