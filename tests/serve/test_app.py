"""The HTTP endpoints, in process: answers, cache hits, and every refusal as JSON."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest
from starlette.testclient import TestClient

from merkl.hashing import is_hex_hash
from merkl.serve import create_app
from tests.serve.conftest import read_calls


def post(client, path, payload=None, **kwargs):
    body = kwargs.pop("content", None)
    if body is None:
        body = json.dumps(payload if payload is not None else {})
    return client.post(path, content=body, **kwargs)


def test_healthz_lists_the_targets(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert "servepipe.pipeline" in response.json()["targets"]


def test_run_returns_result_and_hashes_then_answers_from_the_cache(client, pipeline_repo):
    first = post(client, "/v1/run/servepipe.pipeline", {"args": [3]})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["result"] == 11.0
    assert len(body["hashes"]) == 1
    assert is_hex_hash(body["hashes"][0])
    assert body["stats"] == {"ran": 2, "loaded": 0, "client_values": 0}
    assert read_calls(pipeline_repo) == ["square", "add"]

    again = post(client, "/v1/run/servepipe.pipeline", {"kwargs": {"x": 3, "y": 2}})
    assert again.json()["result"] == 11.0
    assert again.json()["hashes"] == body["hashes"]
    assert again.json()["stats"]["ran"] == 0
    assert read_calls(pipeline_repo) == ["square", "add"]  # no body ran the second time


def test_hashes_match_merkl_run(client, pipeline_repo):
    from tests.helpers import run_cli

    served = post(client, "/v1/run/servepipe.pipeline", {"args": [5], "kwargs": {"y": 1.5}})
    cli = run_cli("run", "--dry", "servepipe.pipeline", "5", "1.5")
    assert cli.code == 0, cli.err
    assert served.json()["hashes"][0] in cli.out
    assert "cached" in cli.out.splitlines()[-1]


def test_a_task_can_be_served_directly(client):
    response = post(client, "/v1/run/servepipe.square", {"args": [7]})
    assert response.json()["result"] == 49


def test_several_outputs_and_plain_results(client):
    two = post(client, "/v1/run/servepipe.two", {"args": [4]}).json()
    assert two["result"] == [16, 5]
    assert len(two["hashes"]) == 2
    plain = post(client, "/v1/run/servepipe.plain", {"args": [4]}).json()
    assert plain == {
        "result": {"double": 8},
        "hashes": [],
        "stats": {"ran": 0, "loaded": 0, "client_values": 0},
    }


def test_empty_body_means_no_arguments(client):
    response = client.post("/v1/run/servepipe.typed", content=b"", params={})
    assert response.status_code == 422
    assert "'name'" in response.json()["error"]


def test_dry_run_lists_outputs_and_what_is_cached(client, pipeline_repo):
    before = post(client, "/v1/dry-run/servepipe.pipeline", {"args": [2]})
    assert before.status_code == 200
    outputs = before.json()["outputs"]
    assert [o["task"] for o in outputs] == ["servepipe.square", "servepipe.add"]
    assert [o["cached"] for o in outputs] == [False, False]
    assert all(is_hex_hash(o["hash"]) for o in outputs)
    assert read_calls(pipeline_repo) == []

    post(client, "/v1/run/servepipe.pipeline", {"args": [2]})
    after = post(client, "/v1/dry-run/servepipe.pipeline", {"args": [2]}).json()["outputs"]
    assert [o["cached"] for o in after] == [True, True]
    assert [o["hash"] for o in after] == [o["hash"] for o in outputs]


def test_dry_run_refuses_cache_values(client):
    response = post(
        client, "/v1/dry-run/servepipe.pipeline", {"args": [2], "cache": {"a" * 64: 1}}
    )
    assert response.status_code == 422


def test_write_file_in_a_served_pipeline_computes_but_writes_nothing(client, pipeline_repo):
    response = post(client, "/v1/run/servepipe.writes", {"args": [6]})
    assert response.json()["result"] == 36
    assert not (pipeline_repo.root / "written.json").exists()
    dry = post(client, "/v1/dry-run/servepipe.writes", {"args": [6]}).json()["outputs"]
    assert [o["cached"] for o in dry] == [True]


def test_write_files_writes_after_evaluation(pipeline_repo, serve_config):
    config = dataclasses.replace(serve_config, write_files=True)
    with TestClient(create_app(config)) as writer:
        response = post(writer, "/v1/run/servepipe.writes", {"args": [6]})
    assert response.json()["result"] == 36
    assert (pipeline_repo.root / "written.json").read_text() == "36"


def test_never_cached_outputs_run_every_time(client, pipeline_repo):
    for _ in range(2):
        assert post(client, "/v1/run/servepipe.never", {"args": [1]}).json()["result"] == 1
    assert read_calls(pipeline_repo).count("uncached") == 2


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"args": ["three"]}, "argument 'x' expects int, got 'three'"),
        ({"args": [True]}, "argument 'x' expects int"),
        ({"args": [1.5]}, "argument 'x' expects int"),
        ({"args": [1, "y"]}, "argument 'y' expects float"),
        ({"args": [1, 2, 3]}, "at most 2 positional argument(s) (x, y), got 3"),
        ({"kwargs": {"x": 1, "z": 2}}, "unexpected argument 'z'; it takes: x, y"),
        ({"kwargs": {"y": 2}}, "missing a required argument: 'x'"),
        ({"args": [1], "kwargs": {"x": 1}}, "multiple values for argument 'x'"),
        ([1, 2], "must be a JSON object"),
        ({"args": {"x": 1}}, '"args" must be a JSON array'),
        ({"kwargs": [1]}, '"kwargs" must be a JSON object'),
        ({"argz": [1]}, "unknown key(s) 'argz'"),
        ({"cache": []}, '"cache" must be a JSON object'),
        ({"cache": {"not-a-hash": 1}}, "is not an output hash"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_bad_arguments_are_422_naming_the_problem(client, payload, fragment, pipeline_repo):
    response = post(client, "/v1/run/servepipe.pipeline", payload)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["error"]
    assert read_calls(pipeline_repo) == []


@pytest.mark.parametrize(
    ("path", "payload", "expected"),
    [
        (
            "/v1/run/servepipe.typed",
            {"args": ["a"], "kwargs": {"path": "b/c", "ratio": 2}},
            ["a", "b/c", False, 2.0],
        ),
        (
            "/v1/run/servepipe.typed",
            {"kwargs": {"name": "n", "flag": True}},
            ["n", ".", True, 1.0],
        ),
        (
            "/v1/run/servepipe.flexible",
            {"args": [1, 2, 3], "kwargs": {"k": "v"}},
            [1, [2, 3], {"k": "v"}],
        ),
    ],
)
def test_signatures_bind_as_in_python(client, path, payload, expected):
    response = post(client, path, payload)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == expected


@pytest.mark.parametrize(
    ("path", "payload", "fragment"),
    [
        (
            "/v1/run/servepipe.typed",
            {"kwargs": {"name": "n", "flag": "yes"}},
            "'flag' expects bool",
        ),
        ("/v1/run/servepipe.typed", {"kwargs": {"name": "n", "path": 3}}, "expects a string path"),
        ("/v1/run/servepipe.flexible", {"kwargs": {"first": 1}}, "positional-only"),
    ],
)
def test_typed_and_positional_only_parameters(client, path, payload, fragment):
    response = post(client, path, payload)
    assert response.status_code == 422
    assert fragment in response.json()["error"]


@pytest.mark.parametrize(
    "body",
    [b"{", b"not json", b'{"args": [NaN]}', b"\xff\xfe", b'{"args": [Infinity]}'],
)
def test_malformed_json_is_400(client, body):
    response = client.post("/v1/run/servepipe.pipeline", content=body)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_big_integers_keep_their_value(client):
    big = 2**80 + 1
    response = client.post("/v1/run/servepipe.plain", content=f'{{"args": [{big}]}}')
    assert response.status_code == 200
    assert json.loads(response.text)["result"] == {"double": 2 * big}


def test_unknown_target_is_404_and_only_served_targets_count(client):
    response = post(client, "/v1/run/servepipe.add", {"args": [1, 2]})
    assert response.status_code == 404
    assert "no pipeline 'servepipe.add' is served" in response.json()["error"]
    assert post(client, "/v1/dry-run/os.system", {"args": ["true"]}).status_code == 404


def test_unknown_paths_and_methods_answer_json(client):
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404
    assert "error" in missing.json()
    wrong_method = client.get("/v1/run/servepipe.pipeline")
    assert wrong_method.status_code == 405
    assert "POST" in wrong_method.headers["allow"]
    assert "error" in wrong_method.json()


def test_oversized_body_is_413(client, serve_config):
    big = b'{"args": [' + b"1," * serve_config.max_body_bytes + b"1]}"
    response = client.post("/v1/run/servepipe.pipeline", content=big)
    assert response.status_code == 413
    assert "at most 65536" in response.json()["error"]


def test_oversized_chunked_body_is_413(client):
    def chunks():
        for _ in range(100):
            yield b" " * 1024

    response = client.post("/v1/run/servepipe.pipeline", content=chunks())
    assert response.status_code == 413


def test_a_task_raising_is_500_naming_the_task_and_the_server_keeps_serving(client):
    response = post(client, "/v1/run/servepipe.failing", {"args": [4]})
    assert response.status_code == 500
    body = response.json()
    assert body["task"] == "servepipe.fail"
    assert body["type"] == "ValueError"
    assert body["error"] == "task servepipe.fail raised ValueError"  # no text without --debug
    assert post(client, "/v1/run/servepipe.pipeline", {"args": [1]}).status_code == 200


def test_a_pipeline_raising_is_500_naming_the_pipeline(client):
    response = post(client, "/v1/run/servepipe.broken", {"args": [1]})
    assert response.status_code == 500
    assert response.json()["error"] == "pipeline servepipe.broken raised RuntimeError"


def test_debug_puts_the_exception_text_into_500s(pipeline_repo, serve_config):
    config = dataclasses.replace(serve_config, debug=True)
    with TestClient(create_app(config)) as debugging:
        response = post(debugging, "/v1/run/servepipe.broken", {"args": [1]})
    assert response.json()["error"] == (
        "pipeline servepipe.broken raised RuntimeError: bug in the pipeline itself"
    )


def test_a_result_json_cannot_carry_is_500(client):
    response = post(client, "/v1/run/servepipe.returns_bytes", {"args": [1]})
    assert response.status_code == 500
    assert "JSON cannot carry" in response.json()["error"]


def test_concurrent_requests_share_the_cache(client, pipeline_repo):
    results: list[int] = []
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(20):
                x = (i + offset) % 5
                response = post(client, "/v1/run/servepipe.pipeline", {"args": [x]})
                assert response.status_code == 200, response.text
                results.append(response.json()["result"])
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 160
    assert set(results) == {x * x + 2.0 for x in range(5)}
    # Racing requests may compute an output twice, never more often than there are requests,
    # and every later request is served from the cache.
    calls = read_calls(pipeline_repo)
    assert 5 <= calls.count("square") <= 8 * 5
    more = post(client, "/v1/run/servepipe.pipeline", {"args": [4]}).json()
    assert more["stats"]["ran"] == 0
