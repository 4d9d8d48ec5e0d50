"""Fuzzing every parser of outside input: pointer files, `merkl.toml`, catalog recipes and
Merlin responses. Each may only return a value or raise a MerklError (the CLI: one clean line,
exit 1 or 2), never another exception, never hang, never write outside the repository."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from merkl.catalog.plugin import PluginContext
from merkl.errors import MerklError, PointerFileError
from merkl.pointer import Pointer, dump_pointer, parse_pointer, pointer_path
from merkl.repo import read_toml
from tests.helpers import run_cli
from tests.reliability.fuzzing import json_values, mutated

FUZZ = settings(
    max_examples=int(os.environ.get("MERKL_TEST_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CLI_FUZZ = settings(FUZZ, max_examples=max(20, FUZZ.max_examples // 3))
MERLIN_DATA = Path(__file__).parents[1] / "catalog" / "testdata" / "merlin"


def _assert_clean_cli(result, where: object) -> None:
    assert result.code in (0, 1, 2), (where, result.code)
    assert "Traceback" not in result.err, (where, result.err)
    assert "--debug to see" not in result.err, (where, result.err)  # a foreign exception
    if result.code:
        assert "merkl: error: " in result.err, (where, result.err)


def _listing(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*") if not p.is_symlink()}


# -- pointer files -----------------------------------------------------------------------------

VALID_POINTER = orjson.loads(
    dump_pointer(Pointer("ab" * 32, 12, "data/train.csv", output="cd" * 32, serializer="json"))
)


def _check_parsed(pointer: Pointer) -> None:
    """What a successful parse guarantees to every caller."""
    assert len(pointer.oid) == 64
    assert all(c in "0123456789abcdef" for c in pointer.oid)
    assert pointer.path
    assert not pointer.path.startswith(("/", "\\"))
    assert ".." not in Path(pointer.path).parts
    assert isinstance(pointer.size, int)
    assert pointer.size >= 0
    assert pointer.type in ("file", "dir")


@FUZZ
@given(st.binary(max_size=300) | st.builds(lambda v: json.dumps(v).encode(), json_values))
def test_pointer_parser_on_arbitrary_bytes(raw):
    try:
        _check_parsed(parse_pointer(raw, Path("x.merkl")))
    except PointerFileError as exc:
        message = str(exc)
    else:
        return
    assert message.startswith("x.merkl: ")


@FUZZ
@given(mutated(VALID_POINTER))
def test_pointer_parser_on_damaged_pointers(document):
    with contextlib.suppress(PointerFileError):
        _check_parsed(parse_pointer(json.dumps(document).encode(), Path("x.merkl")))


@CLI_FUZZ
@given(document=mutated(VALID_POINTER, 2), raw_tail=st.binary(max_size=8))
def test_commands_on_damaged_pointer_files(repo, tmp_path, document, raw_tail):
    (repo.root / "data").mkdir(exist_ok=True)
    (repo.root / "data" / "train.csv").write_bytes(b"1,2,3\n")
    pointer_path(repo.root / "data" / "train.csv").write_bytes(
        json.dumps(document).encode() + raw_tail
    )
    outside = _listing(tmp_path / "outside") if (tmp_path / "outside").exists() else {}
    for command in (
        ["status"],
        ["checkout"],
        ["checkout", "--force"],
        ["verify"],
        ["push", "-r", "nowhere"],
        ["gc", "--dry-run"],
    ):
        _assert_clean_cli(run_cli(*command), (command, document))
    assert (repo.root / "data" / "train.csv").read_bytes() in (b"1,2,3\n",)
    if outside:
        assert _listing(tmp_path / "outside") == outside


# -- merkl.toml --------------------------------------------------------------------------------

VALID_CONFIG = {
    "core": {"link": "symlink", "remote": "origin"},
    "remotes": {"origin": {"url": "/tmp/nowhere-merkl", "jobs": 2, "read_through": True}},
}
toml_fragments = st.lists(
    st.sampled_from(
        [
            "[core]",
            "[remotes.origin]",
            "[remotes]",
            'link = "copy"',
            "link = 3",
            "remote = 1",
            'url = "s3://b/p"',
            'url = "redis://:${NOPE}@h/0"',
            "url = []",
            "jobs = -1",
            'jobs = "x"',
            "read_through = 1",
            "trust_pickle = true",
            "[[core]]",
            "a.b.c = 1",
            'x = """',
            "= 1",
            "[remotes.'bad name']",
            'core = "flat"',
            "remotes = 5",
            "\x00",
            "\ufeff",
            "[remotes.origin.nested]",
        ]
    ),
    max_size=8,
).map("\n".join)


def _dump_toml(data: Any) -> str:
    import tomlkit

    return tomlkit.dumps(data)


@FUZZ
@given(st.text(max_size=200) | toml_fragments)
def test_toml_reader_on_arbitrary_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("toml") / "merkl.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with contextlib.suppress(MerklError):
        assert isinstance(read_toml(path), dict)


def test_toml_reader_on_undecodable_bytes_and_folders(tmp_path):
    bad = tmp_path / "merkl.toml"
    bad.write_bytes(b'[core]\nlink = "\xff\xfe"\n')
    with pytest.raises(MerklError, match=r"merkl\.toml"):
        read_toml(bad)
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with pytest.raises(MerklError, match=r"folder\.toml"):
        read_toml(folder)


@CLI_FUZZ
@given(config=mutated(VALID_CONFIG, 3) | toml_fragments)
def test_commands_on_damaged_config(repo, config):
    text = config if isinstance(config, str) else None
    if text is None:
        try:
            text = _dump_toml(config)
        except Exception:  # not representable as TOML (a null): nothing to test
            return
    (repo.root / "merkl.toml").write_text(text, encoding="utf-8", errors="surrogatepass")
    (repo.root / "f.bin").write_bytes(b"x")
    for command in (
        ["status"],
        ["track", "f.bin"],
        ["remote", "list"],
        ["push"],
        ["pull"],
        ["checkout"],
        ["untrack", "f.bin"],
    ):
        _assert_clean_cli(run_cli(*command), (command, text))


# -- catalog recipes ---------------------------------------------------------------------------

VALID_RECIPE = {
    "name": "fuzz",
    "version": "v1beta1",
    "source": {
        "name": "merlin",
        "scope": "fuzz-scope",
        "config": {"url": "http://127.0.0.1:1/api/merlin", "worker_count": 2},
    },
    "processors": [{"name": "labels", "config": {"labels": {"team": "ml"}}}],
    "sinks": [
        {"name": "console"},
        {"name": "file", "config": {"path": "out.ndjson", "format": "ndjson"}},
    ],
}


@CLI_FUZZ
@given(recipe=mutated(VALID_RECIPE, 3) | st.text(max_size=300))
def test_catalog_lint_on_damaged_recipes(repo, recipe):
    text = recipe if isinstance(recipe, str) else yaml.safe_dump(recipe)
    file = repo.root / "recipe.yaml"
    file.write_text(text, encoding="utf-8", errors="surrogatepass")
    _assert_clean_cli(run_cli("catalog", "lint", str(file)), text)


def test_recipe_alias_bomb_is_refused_quickly(repo):
    """A 1 kB "billion laughs" recipe: 9^9 list items if expanded."""
    lines = ["version: v1beta1", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for this, prev in zip("bcdefghi", "abcdefgh", strict=True):
        lines.append(f"{this}: &{this} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines += [
        "source: {name: merlin, config: {url: 'http://x', labels: *i}}",
        "sinks: [{name: console}]",
    ]
    file = repo.root / "laughs.yaml"
    file.write_text("\n".join(lines))
    result = run_cli("catalog", "lint", str(file))
    assert result.code == 1
    assert "expands to more than" in result.out + result.err
    _assert_clean_cli(result, "alias bomb")


def test_deeply_nested_recipe_is_a_clean_error(repo):
    file = repo.root / "deep.yaml"
    depth = 5000
    file.write_text(
        "version: v1beta1\nsource: {name: merlin, config: {url: 'http://x', labels: "
        + "[" * depth
        + "]" * depth
        + "}}\nsinks: [{name: console}]\n"
    )
    result = run_cli("catalog", "lint", str(file))
    assert result.code == 1
    assert "nested too deeply" in result.out + result.err
    _assert_clean_cli(result, "deep recipe")


# -- Merlin responses --------------------------------------------------------------------------


def _merlin_documents() -> dict[str, Any]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(MERLIN_DATA.glob("*.json"))}


def _route(stem: str) -> str:
    kind, _, ids = stem.partition("-")
    if kind == "projects":
        return "/api/merlin/v1/projects"
    if kind == "models":
        return f"/api/merlin/v1/projects/{ids}/models"
    model_id, version_id = ids.split("-")
    return f"/api/merlin/v1/models/{model_id}/versions/{version_id}"


answers = st.one_of(
    st.just(None),  # the original document
    st.tuples(st.just("json"), st.just("mutate")),
    st.tuples(st.just("raw"), st.binary(max_size=40)),
    st.tuples(st.just("status"), st.sampled_from([400, 401, 404, 429, 500, 503])),
)


@FUZZ
@given(data=st.data())
def test_merlin_source_on_damaged_responses(monkeypatch, data):
    import merkl.catalog.sources.merlin as merlin

    documents = _merlin_documents()
    routes: dict[str, httpx.Response] = {}
    for stem, document in documents.items():
        answer = data.draw(answers, label=stem)
        if answer is None:
            routes[_route(stem)] = httpx.Response(200, json=document)
        elif answer[0] == "json":
            routes[_route(stem)] = httpx.Response(200, json=data.draw(mutated(document, 4)))
        elif answer[0] == "raw":
            routes[_route(stem)] = httpx.Response(200, content=answer[1])
        else:
            routes[_route(stem)] = httpx.Response(answer[1], json={"error": "fuzzed"})

    def handler(request: httpx.Request) -> httpx.Response:
        return routes.get(request.url.path, httpx.Response(404, json={"error": "no route"}))

    monkeypatch.setattr(merlin, "load_credentials", lambda *a, **k: None)
    monkeypatch.setattr(merlin, "GoogleBearerAuth", lambda credentials, http: None)
    monkeypatch.setattr(
        merlin,
        "new_http_client",
        lambda timeout: httpx.Client(transport=httpx.MockTransport(handler)),
    )
    config = merlin.MerlinConfig.model_validate(
        {"url": "http://merlin.test/api/merlin", "worker_count": 2}
    )
    source = merlin.MerlinSource(config, PluginContext("fuzz", scope="fuzz-scope"))
    assets: list[dict[str, Any]] = []
    try:
        source.extract(assets.append)
    except MerklError:
        pass
    finally:
        source.close()
    for asset in assets:
        orjson.dumps(asset)  # every emitted record can be written by a sink
