"""`merkl serve` against hostile clients: forged or unsigned cache values store nothing, pickle
values are refused, fuzzed bodies only get documented 4xx answers, the secret never leaks."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from merkl.repo import Repo
from merkl.serve import ServeConfig, create_app
from merkl.serve.signing import SIGNATURE_HEADER, sign_body
from tests.helpers import write_module
from tests.serve.conftest import PIPELINE_SOURCE, TARGETS

SECRET = "serve-secret-5b0e4c"
DOCUMENTED = {200, 400, 403, 404, 413, 422}
FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("MERKL_TEST_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Targets whose bodies cannot fail for well-typed arguments: any 500 would be the server's.
# `flexible` takes anything and answers it back.
TYPED_TARGETS = [
    "servepipe.pipeline",
    "servepipe.typed",
    "servepipe.square",
    "servepipe.plain",
    "servepipe.flexible",
]


@pytest.fixture
def served(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    write_module(repo.root, "servepipe", PIPELINE_SOURCE)
    monkeypatch.setenv("MERKL_SERVE_SECRET", SECRET)
    app = create_app(ServeConfig(targets=TARGETS, max_body_bytes=16 * 1024))
    with TestClient(app) as client:
        yield client


def _stored(repo: Repo) -> tuple[list[str], list[tuple[str, str]]]:
    with sqlite3.connect(repo.index.path) as conn:
        rows = conn.execute("SELECT out_hash, oid FROM outputs ORDER BY out_hash").fetchall()
    return sorted(repo.store.iter_oids()), rows


def _hashes(client: TestClient, target: str, args: list[object]) -> list[str]:
    response = client.post(f"/v1/dry-run/{target}", content=json.dumps({"args": args}))
    assert response.status_code == 200, response.text
    return [o["hash"] for o in response.json()["outputs"]]


@pytest.mark.parametrize("forgery", ["unsigned", "wrong-secret", "other-body", "truncated"])
def test_forged_client_values_store_nothing(served, repo, forgery):
    square_hash, _ = _hashes(served, "servepipe.pipeline", [3])
    body = json.dumps({"args": [3], "cache": {square_hash: 1000}}).encode()
    signature = {
        "unsigned": None,
        "wrong-secret": sign_body(body, "guessed-secret"),
        "other-body": sign_body(json.dumps({"args": [3]}).encode(), SECRET),  # replayed
        "truncated": sign_body(body, SECRET)[:32],
    }[forgery]
    headers = {SIGNATURE_HEADER: signature} if signature else {}
    before = _stored(repo)
    response = served.post("/v1/run/servepipe.pipeline", content=body, headers=headers)
    assert response.status_code == 403, response.text
    assert _stored(repo) == before
    honest = served.post("/v1/run/servepipe.pipeline", content=json.dumps({"args": [3]}))
    assert honest.json()["result"] == 11.0  # 3*3 + 2.0: the forged 1000 was never believed


def test_signed_values_for_pickled_outputs_are_refused(served, repo):
    [pickled_hash] = _hashes(served, "servepipe.with_pickle", [5])
    body = json.dumps({"args": [5], "cache": {pickled_hash: {"x": "evil"}}}).encode()
    before = _stored(repo)
    response = served.post(
        "/v1/run/servepipe.with_pickle",
        content=body,
        headers={SIGNATURE_HEADER: sign_body(body, SECRET)},
    )
    assert response.status_code == 403, response.text
    assert _stored(repo) == before


def test_the_secret_never_appears_in_answers_or_logs(served, caplog):
    caplog.set_level(logging.DEBUG)
    square_hash, _ = _hashes(served, "servepipe.pipeline", [2])
    texts = []
    for payload, headers in [
        ({"args": [2], "cache": {square_hash: 1}}, {SIGNATURE_HEADER: "bad"}),
        ({"args": ["x"]}, {}),
        ({"args": [2], "cache": {"nothex": 1}}, {}),
    ]:
        texts.append(served.post("/v1/run/servepipe.pipeline", json=payload, headers=headers).text)
    texts.append(served.post("/v1/run/servepipe.failing", json={"args": [1]}).text)
    assert SECRET not in "".join(texts) + caplog.text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = (
    st.binary(max_size=200)
    | st.builds(lambda v: json.dumps(v).encode(), json_values)
    | st.builds(
        lambda args, kwargs, cache, extra: json.dumps(
            {"args": args, "kwargs": kwargs, "cache": cache, **extra}
        ).encode(),
        json_values,
        json_values,
        st.dictionaries(st.sampled_from(["a" * 64, "0" * 64, "x"]), json_values, max_size=2)
        | json_values,
        st.dictionaries(st.text(max_size=4), json_values, max_size=1),
    )
)


@FUZZ_SETTINGS
@given(target=st.sampled_from(TYPED_TARGETS), body=bodies, dry=st.booleans())
def test_fuzzed_bodies_only_get_documented_answers(served, repo, target, body, dry):
    before = _stored(repo)
    endpoint = "dry-run" if dry else "run"
    response = served.post(f"/v1/{endpoint}/{target}", content=body)
    assert response.status_code in DOCUMENTED, (body, response.status_code, response.text)
    if response.status_code != 200:
        assert set(response.json()) == {"error"}
        assert response.json()["error"]
    if dry or response.status_code != 200:
        assert _stored(repo) == before  # refusals and dry runs store nothing


@FUZZ_SETTINGS
@given(path=st.text(min_size=1, max_size=30), method=st.sampled_from(["GET", "POST", "PUT"]))
def test_fuzzed_paths_and_methods(served, path, method):
    response = served.request(method, "/" + quote(path.lstrip("/"), safe="/"))
    assert response.status_code in DOCUMENTED | {405}, (path, response.text)


@pytest.mark.parametrize(
    "body",
    [
        b'{"args": ["\\ud800"]}',  # a lone surrogate: valid JSON text, no UTF-8 form
        b'{"kwargs": {"\\udfff": 1}, "args": [1]}',
        b'{"args": [' + b"[" * 600 + b"1" + b"]" * 600 + b"]}",
    ],
    ids=["surrogate-value", "surrogate-key", "nested-600"],
)
def test_bodies_that_cannot_be_answered_are_refused_up_front(served, repo, body):
    before = _stored(repo)
    for endpoint in ("run", "dry-run"):
        response = served.post(f"/v1/{endpoint}/servepipe.flexible", content=body)
        assert response.status_code == 400, response.text
    assert _stored(repo) == before
