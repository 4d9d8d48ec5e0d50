"""Plugin configs checked against each plugin: file, line, plugin and key in every message."""

from __future__ import annotations

import pytest

from merkl.catalog.recipe import load_recipe
from merkl.catalog.validate import lint_recipe, resolve_recipe
from merkl.errors import RecipeError
from tests.catalog.test_recipe import VALID, write


def problems_for(folder, text) -> list[str]:
    path = write(folder, text)
    return [p.removeprefix(str(path)) for p in lint_recipe(load_recipe(path, environ={}))]


def test_a_valid_recipe_has_no_problems(merkl_globals):
    assert problems_for(merkl_globals, VALID) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("    url: https://merlin.example.com/api/merlin", "    worker_count: 2"),
            ":6: source 'merlin': config.url: required key is missing",
        ),
        (
            ("    url: https://merlin.example.com/api/merlin", "    url: ''"),
            ":7: source 'merlin': config.url: validation for field 'url' failed on the "
            "'required' tag (got '')",
        ),
        (
            ("api/merlin", "api/merlin\n    worker_count: 0"),
            ":8: source 'merlin': config.worker_count: Input should be greater than or equal to "
            "1 (got 0)",
        ),
        (("api/merlin", "api/merlin\n    worker_count: '10'"), None),
        (
            ("api/merlin", "api/merlin\n    worker_count: many"),
            ":8: source 'merlin': config.worker_count: Input should be a valid integer, unable "
            "to parse string as an integer (got 'many')",
        ),
        (
            ("api/merlin", "api/merlin\n    request_timeout: 10 seconds"),
            ":8: source 'merlin': config.request_timeout: invalid duration '10 seconds': "
            "expected a Go duration such as '300ms', '10s' or '1m30s' (units ns, us, ms, s, m, "
            "h) (got '10 seconds')",
        ),
        (
            ("api/merlin", "api/merlin\n    request_timeout: 500"),
            ":8: source 'merlin': config.request_timeout: validation for field "
            "'request_timeout' failed on the 'min' tag",
        ),
        (("api/merlin", "api/merlin\n    request_timeout: 500us"), "failed on the 'min' tag"),
        (
            ("api/merlin", "api/merlin\n    workers: 3"),
            ":8: source 'merlin': config.workers: unknown key; merlin takes url, "
            "service_account_base64, request_timeout, worker_count, use_id_token, audience",
        ),
        (
            ("https://merlin.example.com/api/merlin", "http://merlin:notaport/api"),
            ":7: source 'merlin': config.url: new url builder: invalid input: parse "
            "'http://merlin:notaport/api': Invalid port: 'notaport'",
        ),
        (
            ("https://merlin.example.com/api/merlin", "localhost:8080/api"),
            "scheme 'localhost' is not http or https; write the URL with its scheme",
        ),
        (("https://merlin.example.com/api/merlin", "'http://merlin/%zz'"), "invalid URL escape"),
        (("https://merlin.example.com/api/merlin", "'http:///api'"), "no host"),
        (
            ("  scope: staging\n", ""),
            ":3: source 'merlin': urn scope is required to generate unique urn",
        ),
        (
            ("  name: merlin", "  name: merlinn"),
            ":4: no catalog source named 'merlinn'; known sources: ",
        ),
        (("  - name: labels", "  - name: label"), ":9: no catalog processor named 'label'"),
        (
            ("labels: {team: ml}", "labels: [ml]"),
            ":11: processor 'labels': config.labels: Input should be a valid dictionary (got "
            "['ml'])",
        ),
        (
            ("      format: ndjson", "      format: json"),
            ":17: sink 'file': config.format: Input should be 'ndjson', 'yaml' or 'yml' (got "
            "'json')",
        ),
        (
            ("./out.ndjson", "./out.v2.ndjson"),
            ":16: sink 'file': config.path: invalid filename: the file name must contain "
            "exactly one '.'",
        ),
        (
            ("  - name: console", "  - name: console\n    config: {pretty: true}"),
            ":14: sink 'console': config.pretty: unknown key; console takes none",
        ),
    ],
)
def test_config_problems(merkl_globals, change, expected):
    problems = problems_for(merkl_globals, VALID.replace(*change))
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1, problems
        assert expected in problems[0]


def test_all_problems_are_reported_together(merkl_globals):
    text = VALID.replace("  scope: staging\n", "").replace("format: ndjson", "format: csv")
    text = text.replace("api/merlin", "api/merlin\n    worker_count: -1")
    path = write(merkl_globals, text)
    recipe = load_recipe(path, environ={})
    assert len(lint_recipe(recipe)) == 3
    with pytest.raises(RecipeError) as caught:
        resolve_recipe(recipe)
    assert str(caught.value).count("; ") >= 2


def test_headers_of_http_sinks_are_never_echoed(merkl_globals):
    text = VALID.replace(
        "  - name: console\n",
        "  - name: http\n    config:\n      url: https://x.example.com\n      method: PUT\n"
        "      headers: {Authorization: [Bearer, sekret-token]}\n",
    )
    (problem,) = problems_for(merkl_globals, text)
    assert "config.headers.Authorization" in problem
    assert "sekret-token" not in problem


def test_import_path_plugins(merkl_globals):
    text = VALID.replace("  - name: console", "  - name: tests.catalog.plugins:RecordingSink")
    assert problems_for(merkl_globals, text) == []
    bad = VALID.replace("  - name: console", "  - name: tests.catalog.plugins:NotAPlugin")
    (problem,) = problems_for(merkl_globals, bad)
    assert "is not a merkl catalog sink class" in problem
