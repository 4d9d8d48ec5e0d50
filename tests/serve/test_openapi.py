"""The OpenAPI document: valid OpenAPI 3.1, and the server keeps to it under fuzzed requests."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

DOCUMENTED = {200, 400, 403, 404, 413, 422}
settings.register_profile("serve-fuzz", max_examples=120, deadline=None)
fuzz = settings(
    settings.get_profile("serve-fuzz"),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_the_document_is_valid_openapi(document):
    validate(document)
    assert "/v1/run/servepipe.pipeline" in document["paths"]
    assert "/v1/dry-run/servepipe.pipeline" in document["paths"]
    request = document["components"]["schemas"]["Request.servepipe.pipeline"]
    assert request["properties"]["kwargs"]["properties"] == {
        "x": {"type": "integer"},
        "y": {"type": "number"},
    }
    assert request["properties"]["args"]["maxItems"] == 2
    run = document["paths"]["/v1/run/servepipe.pipeline"]["post"]
    assert run["description"] == "Square x, then add y."
    assert set(run["responses"]) == {str(s) for s in DOCUMENTED} | {"500", "503", "504"}


def test_healthz_matches_its_schema(client, document):
    health = client.get("/healthz").json()
    check_against(document, "Health", health)
    assert health["status"] == "ok"
    assert health["workers"]["busy"] == health["workers"]["hung"] == 0


def check_against(document, schema_name, payload):
    root = {"$ref": f"#/components/schemas/{schema_name}", **document}
    jsonschema.validate(payload, root, cls=jsonschema.Draft202012Validator)


# Integers stay within 32 bits: a square wider than 64 bits cannot be stored by the JSON
# serializer, a limit of the cache rather than of the server.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**31), 2**31)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
numbers = st.integers(-1000, 1000) | st.floats(-1e6, 1e6) | st.text(max_size=3) | st.booleans()
plausible = st.one_of(
    st.builds(lambda x: {"args": [x]}, st.integers(-1000, 1000)),
    st.builds(lambda x, y: {"kwargs": {"x": x, "y": y}}, st.integers(0, 9), st.floats(-9, 9)),
    st.builds(
        lambda name, flag: {"args": [name], "kwargs": {"flag": flag}}, st.text(), st.booleans()
    ),
)
bodies = st.one_of(
    plausible.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {},
        optional={
            "args": st.lists(numbers, max_size=3)
            | st.lists(json_values, max_size=3)
            | json_values,
            "kwargs": st.dictionaries(st.sampled_from(["x", "y", "name", "flag"]), numbers)
            | st.dictionaries(st.sampled_from(["x", "y", "name", "z", "flag"]), json_values)
            | json_values,
            "cache": st.dictionaries(st.sampled_from(["0" * 64, "f" * 64, "x"]), json_values),
        },
    ).map(lambda v: json.dumps(v).encode()),
)
paths = st.sampled_from(
    [
        "/v1/run/servepipe.pipeline",
        "/v1/dry-run/servepipe.pipeline",
        "/v1/run/servepipe.typed",
        "/v1/run/servepipe.flexible",
        "/v1/dry-run/servepipe.two",
        "/v1/run/servepipe.unknown",
    ]
)


@fuzz
@given(path=paths, body=bodies)
def test_fuzzed_requests_get_a_documented_answer(client, document, path, body):
    response = client.post(path, content=body)
    assert response.status_code in DOCUMENTED, (response.status_code, response.text)
    payload = response.json()
    if response.status_code != 200:
        check_against(document, "Error", payload)
        assert payload["error"]
    elif path.startswith("/v1/run/"):
        check_against(document, "RunResponse", payload)
    else:
        check_against(document, "DryRunResponse", payload)
