"""Google auth for Merlin (spec §3.2) and the rule that no secret is ever printed."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from tests.catalog.fake_merlin import (
    BASE_PATH,
    GOLDEN,
    USERINFO_EMAIL_SCOPE,
    make_service_account_key,
    merlin_path,
    serve_merlin,
    write_recipe,
)
from tests.helpers import run_cli


def b64(data: dict | str | bytes) -> str:
    raw = (
        data
        if isinstance(data, bytes)
        else (data.encode() if isinstance(data, str) else json.dumps(data).encode())
    )
    return base64.b64encode(raw).decode()


def run_recipe(folder: Path, url: str, key_b64: str, monkeypatch, extra_config: str = ""):
    recipe = write_recipe(folder, url=url, key_b64=key_b64, extra_config=extra_config)
    monkeypatch.setenv("MERLIN_KEY", key_b64)
    return run_cli("catalog", "run", str(recipe), "--retry-initial", "0")


def test_key_split_over_lines_like_a_yaml_block_is_accepted(
    httpserver, token_endpoint, service_account_b64, merkl_globals
):
    serve_merlin(httpserver, token_endpoint)
    wrapped = "\n".join(
        service_account_b64[i : i + 76] for i in range(0, len(service_account_b64), 76)
    )
    block = "\n".join("      " + line for line in wrapped.splitlines())
    recipe = merkl_globals / "recipe.yaml"
    recipe.write_text(
        "version: v1beta1\nsource:\n  name: merlin\n  scope: test-merlin\n  config:\n"
        f"    url: {httpserver.url_for(BASE_PATH)}\n    worker_count: 1\n"
        f"    service_account_base64: |\n{block}\n"
        "sinks:\n  - name: file\n    config: {path: ./assets.ndjson, format: ndjson}\n"
    )

    result = run_cli("catalog", "run", str(recipe))

    assert result.code == 0, result.err
    assert (merkl_globals / "assets.ndjson").read_text() == (GOLDEN / "merlin.ndjson").read_text()


def test_application_default_credentials_when_the_key_is_blank(
    httpserver, token_endpoint, service_account, merkl_globals, monkeypatch
):
    key_file = merkl_globals / "adc.json"
    key_file.write_text(json.dumps(service_account))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    serve_merlin(httpserver, token_endpoint)
    recipe = write_recipe(merkl_globals, url=httpserver.url_for(BASE_PATH))

    result = run_cli("catalog", "run", str(recipe))

    assert result.code == 0, result.err
    assert len(token_endpoint.calls) == 1
    assert token_endpoint.calls[0]["scope"] == USERINFO_EMAIL_SCOPE
    assert (merkl_globals / "assets.ndjson").read_text() == (GOLDEN / "merlin.ndjson").read_text()


def test_no_default_credentials_fails_before_any_request(httpserver, merkl_globals):
    recipe = write_recipe(merkl_globals, url=httpserver.url_for(BASE_PATH))

    result = run_cli("catalog", "run", str(recipe))

    assert result.code == 1
    assert (
        "failed to setup source 'merlin': init Merlin extractor: new Merlin client: "
        "google: could not find default credentials"
    ) in result.err
    assert list(httpserver.log) == []


def test_id_token_mode_sends_a_google_id_token_for_the_audience(
    httpserver, token_endpoint, service_account_b64, merkl_globals, monkeypatch
):
    serve_merlin(httpserver, token_endpoint)

    result = run_recipe(
        merkl_globals,
        httpserver.url_for(BASE_PATH),
        service_account_b64,
        monkeypatch,
        extra_config="use_id_token: true\n",
    )

    assert result.code == 0, result.err
    (claims,) = token_endpoint.calls
    assert claims["target_audience"] == "sdk.caraml"
    assert token_endpoint.token.count(".") == 2  # a JWT, sent as the bearer token
    assert (merkl_globals / "assets.ndjson").read_text() == (GOLDEN / "merlin.ndjson").read_text()


def test_token_endpoint_refusal_fails_the_projects_call(
    httpserver, private_key_pem, merkl_globals, monkeypatch
):
    httpserver.expect_request("/refuse", method="POST").respond_with_json(
        {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400
    )
    key = b64(make_service_account_key(private_key_pem, httpserver.url_for("/refuse")))

    result = run_recipe(merkl_globals, httpserver.url_for(BASE_PATH), key, monkeypatch)

    assert result.code == 1
    assert "fetch projects: execute request: GET " in result.err
    assert "fetch Google token: invalid_grant: Invalid JWT Signature." in result.err
    assert not any(r.path == merlin_path("projects") for r, _ in httpserver.log)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("not base64 at all!", "decode base64: illegal base64 data at input byte 3"),
        ("YWJj=ZGVm", "decode base64: illegal base64 data"),
        (b64("this is not JSON"), "google credentials from JSON: Expecting value"),
        (b64([1, 2]), "google credentials from JSON: expected a JSON object"),
        (b64({"project_id": "p"}), "missing 'type' field in credentials"),
        (b64({"type": "service_account", "project_id": "p"}), "missing fields"),
        (
            b64({"type": "external_account", "audience": "x"}),
            "'external_account' is not supported",
        ),
    ],
)
def test_bad_service_account_key_fails_before_extraction(
    httpserver, merkl_globals, monkeypatch, key, expected
):
    result = run_recipe(merkl_globals, httpserver.url_for(BASE_PATH), key, monkeypatch)

    assert result.code == 1
    assert "recipe.yaml:8: source 'merlin': config.service_account_base64: " in result.err
    assert expected in result.err
    assert list(httpserver.log) == []
    assert key not in result.err


def test_unreadable_private_key_is_reported_without_the_key(
    httpserver, service_account, merkl_globals, monkeypatch
):
    broken = dict(
        service_account,
        private_key=service_account["private_key"][:200] + "\n-----END PRIVATE KEY-----\n",
    )
    key_b64 = b64(broken)

    result = run_recipe(merkl_globals, httpserver.url_for(BASE_PATH), key_b64, monkeypatch)

    assert result.code == 1
    assert (
        "failed to setup source 'merlin': init Merlin extractor: new Merlin client: "
        "google credentials from JSON: "
    ) in result.err
    assert list(httpserver.log) == []
    body_line = service_account["private_key"].splitlines()[1]
    assert body_line not in result.err
    assert key_b64 not in result.err


def test_secrets_never_reach_output_logs_or_errors(
    httpserver,
    token_endpoint,
    service_account,
    service_account_b64,
    merkl_globals,
    monkeypatch,
    caplog,
):
    """Runs that succeed, skip work and fail, then grep everything printed or logged."""
    caplog.set_level(logging.DEBUG)
    serve_merlin(httpserver, token_endpoint, skip=("models-2", "version-10-3"))
    httpserver.expect_request(merlin_path("projects/2/models")).respond_with_json(
        {"error": "denied"}, status=403
    )
    httpserver.expect_request(merlin_path("models/10/versions/3")).respond_with_data("gone", 410)
    url = httpserver.url_for(BASE_PATH)
    outputs = []
    for extra in ("", "request_timeout: 7\n", "use_id_token: true\n"):
        result = run_recipe(merkl_globals, url, service_account_b64, monkeypatch, extra)
        outputs += [result.out, result.err]
        for flag in ("--debug",):
            outputs.append(
                run_cli(flag, "catalog", "lint", str(merkl_globals / "recipe.yaml")).out
            )
    outputs.append((merkl_globals / "assets.ndjson").read_text())
    outputs.append(caplog.text)
    everything = "\n".join(outputs)

    assert "model=10" in everything
    assert "project=2" in everything
    secrets = [service_account_b64, service_account["private_key_id"], *token_endpoint.issued]
    secrets += service_account["private_key"].splitlines()[1:-1]
    assert token_endpoint.issued
    for secret in secrets:
        assert secret not in everything
