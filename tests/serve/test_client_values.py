"""Client-sent cache values: stored only when signed with the shared secret, all or nothing."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from merkl.serve import ServeConfig, create_app
from merkl.serve.signing import SIGNATURE_HEADER, sign_body
from tests.serve.conftest import SECRET, TARGETS, read_calls


def hashes_of(client, target, args):
    response = client.post(f"/v1/dry-run/{target}", content=json.dumps({"args": args}))
    return [o["hash"] for o in response.json()["outputs"]]


def signed_post(client, target, payload, secret=SECRET):
    body = json.dumps(payload).encode()
    headers = {SIGNATURE_HEADER: sign_body(body, secret)} if secret else {}
    return client.post(f"/v1/run/{target}", content=body, headers=headers)


def test_signed_values_are_stored_and_no_body_runs_for_them(client, pipeline_repo):
    square_hash, add_hash = hashes_of(client, "servepipe.pipeline", [3])
    # The server cannot check the value, so a signed 100 for square(3) is believed.
    response = signed_post(
        client, "servepipe.pipeline", {"args": [3], "cache": {square_hash: 100}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == 102.0
    assert response.json()["stats"] == {"ran": 1, "loaded": 1, "client_values": 1}
    assert read_calls(pipeline_repo) == ["add"]
    entry = pipeline_repo.index.find_output(square_hash)
    assert entry is not None
    assert entry.serializer == "json"
    runs = list(pipeline_repo.index.iter_runs(out_hash=square_hash))
    assert [r.task for r in runs] == ["square"]
    assert add_hash in response.json()["hashes"]


def test_the_root_value_alone_answers_the_request(client, pipeline_repo):
    (_, add_hash) = hashes_of(client, "servepipe.pipeline", [4])
    response = signed_post(client, "servepipe.pipeline", {"args": [4], "cache": {add_hash: 7}})
    assert response.json()["result"] == 7
    assert response.json()["stats"]["ran"] == 0
    assert read_calls(pipeline_repo) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {SIGNATURE_HEADER: ""},
        {SIGNATURE_HEADER: "00" * 32},
        {SIGNATURE_HEADER: "zz\u00e9".encode("latin-1")},
    ],
    ids=["missing", "empty", "wrong", "garbage"],
)
def test_unsigned_or_badly_signed_values_are_403_and_nothing_is_stored(
    client, pipeline_repo, headers
):
    square_hash, _ = hashes_of(client, "servepipe.pipeline", [3])
    body = json.dumps({"args": [3], "cache": {square_hash: 100}}).encode()
    response = client.post("/v1/run/servepipe.pipeline", content=body, headers=headers)
    assert response.status_code == 403
    assert SIGNATURE_HEADER in response.json()["error"]
    assert pipeline_repo.index.find_output(square_hash) is None
    assert read_calls(pipeline_repo) == []


def test_a_signature_covers_the_exact_body(client, pipeline_repo):
    square_hash, _ = hashes_of(client, "servepipe.pipeline", [3])
    body = json.dumps({"args": [3], "cache": {square_hash: 100}}).encode()
    signature = sign_body(body, SECRET)
    tampered = body.replace(b"100", b"999")
    response = client.post(
        "/v1/run/servepipe.pipeline", content=tampered, headers={SIGNATURE_HEADER: signature}
    )
    assert response.status_code == 403
    assert pipeline_repo.index.find_output(square_hash) is None


def test_signed_with_another_secret_is_403(client, pipeline_repo):
    square_hash, _ = hashes_of(client, "servepipe.pipeline", [3])
    response = signed_post(
        client, "servepipe.pipeline", {"args": [3], "cache": {square_hash: 1}}, secret="other"
    )
    assert response.status_code == 403


def test_a_server_without_secret_refuses_every_value(pipeline_repo, serve_config, monkeypatch):
    monkeypatch.delenv("MERKL_SERVE_SECRET", raising=False)
    with TestClient(create_app(serve_config)) as plain:
        square_hash, _ = hashes_of(plain, "servepipe.pipeline", [3])
        response = signed_post(
            plain, "servepipe.pipeline", {"args": [3], "cache": {square_hash: 1}}
        )
    assert response.status_code == 403
    assert "$MERKL_SERVE_SECRET" in response.json()["error"]
    assert pipeline_repo.index.find_output(square_hash) is None


def test_secret_env_names_another_variable(pipeline_repo, monkeypatch):
    monkeypatch.setenv("MY_SERVE_KEY", "k2")
    config = ServeConfig(targets=TARGETS, secret_env="MY_SERVE_KEY")
    with TestClient(create_app(config)) as keyed:
        square_hash, _ = hashes_of(keyed, "servepipe.pipeline", [3])
        refused = signed_post(
            keyed, "servepipe.pipeline", {"args": [3], "cache": {square_hash: 1}}
        )
        accepted = signed_post(
            keyed, "servepipe.pipeline", {"args": [3], "cache": {square_hash: 1}}, secret="k2"
        )
    assert refused.status_code == 403
    assert accepted.status_code == 200
    assert accepted.json()["result"] == 3.0


def test_one_bad_value_stores_none(client, pipeline_repo):
    square_hash, _ = hashes_of(client, "servepipe.pipeline", [3])
    outsider = "ab" * 32
    response = signed_post(
        client, "servepipe.pipeline", {"args": [3], "cache": {square_hash: 9, outsider: 1}}
    )
    assert response.status_code == 422
    assert f"{outsider} is not the hash of an output of servepipe.pipeline" in response.text
    assert pipeline_repo.index.find_output(square_hash) is None


def test_a_cached_output_keeps_its_value(client, pipeline_repo):
    first = client.post("/v1/run/servepipe.pipeline", content=json.dumps({"args": [2]}))
    _, add_hash = hashes_of(client, "servepipe.pipeline", [2])
    response = signed_post(client, "servepipe.pipeline", {"args": [2], "cache": {add_hash: -1}})
    assert response.json()["result"] == first.json()["result"] == 6.0
    assert response.json()["stats"]["client_values"] == 0


def test_pickle_outputs_refuse_client_values_unless_allowed(pipeline_repo, monkeypatch):
    monkeypatch.setenv("MERKL_SERVE_SECRET", SECRET)
    with TestClient(create_app(ServeConfig(targets=TARGETS))) as strict:
        (pickled_hash,) = hashes_of(strict, "servepipe.with_pickle", [1])
        refused = signed_post(
            strict, "servepipe.with_pickle", {"args": [1], "cache": {pickled_hash: {"x": 5}}}
        )
    assert refused.status_code == 403
    assert "'pickle' serializer" in refused.json()["error"]
    assert pipeline_repo.index.find_output(pickled_hash) is None

    allowed_config = ServeConfig(targets=TARGETS, allow_unsafe_values=True)
    with TestClient(create_app(allowed_config)) as lenient:
        accepted = signed_post(
            lenient, "servepipe.with_pickle", {"args": [1], "cache": {pickled_hash: {"x": 5}}}
        )
    assert accepted.status_code == 200
    assert accepted.json()["result"] == {"x": 5}
    assert "pickled" not in read_calls(pipeline_repo)


def test_a_value_its_serializer_refuses_is_422(client, pipeline_repo):
    (raw_hash,) = hashes_of(client, "servepipe.returns_bytes", [1])
    response = signed_post(
        client, "servepipe.returns_bytes", {"args": [1], "cache": {raw_hash: 5}}
    )
    assert response.status_code == 422
    assert "does not fit its 'bytes' serializer" in response.json()["error"]
    assert pipeline_repo.index.find_output(raw_hash) is None


def test_never_cached_outputs_ignore_client_values(client, pipeline_repo):
    (never_hash,) = hashes_of(client, "servepipe.never", [1])
    response = signed_post(client, "servepipe.never", {"args": [1], "cache": {never_hash: 42}})
    assert response.json()["result"] == 1
    assert response.json()["stats"]["client_values"] == 0
