"""The `merkl` catalog source: tracked files and pipeline outputs as Assets with lineage."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from pytest_httpserver import HTTPServer

from merkl.catalog.asset import make_asset
from merkl.catalog.runner import RunOptions, run_recipe_file
from merkl.hashing import hash_file
from merkl.pointer import read_pointer
from tests.helpers import run_cli
from tests.provenance.conftest import run_ok

ASSET_KEYS = list(make_asset(urn="", name="", service="", asset_type=""))


def recipe(folder: Path, config: str = "path: .", sinks: str | None = None) -> Path:
    sinks = sinks or "  - name: file\n    config: {path: ./assets.ndjson, format: ndjson}\n"
    path = folder / "lineage.yaml"
    path.write_text(
        "name: lineage\nversion: v1beta1\nsource:\n  name: merkl\n  scope: demo\n  config:\n"
        + textwrap.indent(config, "    ")
        + "\nsinks:\n"
        + sinks
    )
    return path


def extract(folder: Path, config: str = "path: .") -> tuple[dict[str, dict], list[str]]:
    result = run_recipe_file(recipe(folder, config), RunOptions(max_retries=0))
    assert result.success, result.error
    lines = (folder / "assets.ndjson").read_text().splitlines()
    assets = [json.loads(line) for line in lines]
    assert [a["urn"] for a in assets] == sorted(a["urn"] for a in assets)
    assert result.record_count == len(assets)
    return {a["urn"]: a for a in assets}, result.warnings


def upstreams(asset: dict) -> list[str]:
    return [u["urn"] for u in asset["lineage"]["upstreams"]]


def output_urn(digest: str) -> str:
    return f"urn:merkl:demo:output:{digest}"


@pytest.fixture
def built(examples):
    run_ok("track", "data/train.csv")
    run_ok("run", "pipeline2.pipeline")
    return examples


def test_lineage_chain_from_model_back_to_training_data(built):
    assets, warnings = extract(built)
    assert warnings == []
    model = assets["urn:merkl:demo:file:model.bin"]
    data = assets["urn:merkl:demo:file:data/train.csv"]
    assert (model["type"], data["type"]) == ("model", "dataset")
    # model.bin ← output of train ← output 0 of load_data ← data/train.csv
    train_hash = read_pointer(built / "model.bin.merkl").output
    assert upstreams(model) == [output_urn(train_hash)]
    train = assets[output_urn(train_hash)]
    assert train["name"] == "pipeline2.train"
    [load_urn] = upstreams(train)
    load = assets[load_urn]
    assert load["name"] == "pipeline2.load_data[0]"
    assert upstreams(load) == ["urn:merkl:demo:file:data/train.csv"]
    assert upstreams(data) == []
    # Exactly those four assets; every upstream is itself an asset (the lineage is closed).
    assert sorted(assets) == sorted([model["urn"], data["urn"], train["urn"], load["urn"]])
    for asset in assets.values():
        assert list(asset) == ASSET_KEYS
        assert asset["service"] == "merkl"
        for resource in asset["lineage"]["upstreams"]:
            assert resource["urn"] in assets
            assert resource["type"] == assets[resource["urn"]]["type"]
            assert resource["service"] == "merkl"


def test_payloads_carry_hashes_and_tasks(built):
    assets, _ = extract(built)
    model = assets["urn:merkl:demo:file:model.bin"]
    pointer = read_pointer(built / "model.bin.merkl")
    assert model["data"]["@type"].endswith(".Model")
    assert model["data"]["flavor"] == "merkl"
    assert model["data"]["attributes"] == {
        "hash": f"blake3:{pointer.oid}",
        "kind": "file",
        "output": f"blake3:{pointer.output}",
        "path": "model.bin",
        "serializer": "json",
        "size": pointer.size,
        "tracked": True,
    }
    assert model["data"]["versions"][0]["version"] == pointer.oid[:12]
    assert model["create_time"].endswith("Z")
    data = assets["urn:merkl:demo:file:data/train.csv"]
    assert data["data"]["@type"].endswith(".Table")
    assert data["data"]["attributes"]["hash"] == "blake3:" + hash_file(built / "data/train.csv")
    train = assets[upstreams(model)[0]]
    attributes = train["data"]["attributes"]
    assert attributes["task"] == "pipeline2.train"
    assert attributes["cached"] is True
    assert sorted(attributes["arguments"]) == ["epochs", "learning_rate", "rows"]
    assert attributes["code_hash"].startswith("blake3:")
    assert train["description"] == "output 0 of task pipeline2.train"


def test_untracked_input_file_is_an_asset_too(examples):
    run_ok("run", "pipeline2.pipeline")
    assets, warnings = extract(examples)
    assert warnings == []
    data = assets["urn:merkl:demo:file:data/train.csv"]
    assert data["data"]["attributes"]["tracked"] is False
    assert "not tracked" in data["description"]


def test_model_patterns_decide_the_type(built):
    assets, _ = extract(built, 'path: .\nmodel_patterns: ["data/*.csv"]')
    assert assets["urn:merkl:demo:file:model.bin"]["type"] == "dataset"
    assert assets["urn:merkl:demo:file:data/train.csv"]["type"] == "model"
    load = next(a for a in assets.values() if a["name"] == "pipeline2.load_data[0]")
    assert load["lineage"]["upstreams"][0]["type"] == "model"


def test_tracked_directory_and_plain_tracked_files(examples):
    (examples / "images").mkdir()
    (examples / "images" / "a.png").write_bytes(b"a")
    (examples / "images" / "b.png").write_bytes(b"bb")
    (examples / "weights.pt").write_bytes(b"w" * 10)
    run_ok("track", "images", "weights.pt")
    assets, _ = extract(examples)
    assert sorted(assets) == ["urn:merkl:demo:file:images", "urn:merkl:demo:file:weights.pt"]
    images = assets["urn:merkl:demo:file:images"]
    assert images["type"] == "dataset"
    assert images["data"]["attributes"]["kind"] == "dir"
    assert images["data"]["attributes"]["files"] == 2
    assert assets["urn:merkl:demo:file:weights.pt"]["type"] == "model"


def test_an_input_whose_content_is_no_longer_known_is_a_warning(examples):
    run_ok("run", "pipeline2.pipeline")
    csv = examples / "data" / "train.csv"
    csv.write_text(csv.read_text() + "11.0,35.0\n")
    run_ok("dag", "pipeline2.pipeline")  # hashes the new content: the old one is forgotten
    (examples / "broken.bin.merkl").write_text("{")
    assets, warnings = extract(examples)
    assert any("broken.bin.merkl: not a valid merkl pointer" in w for w in warnings)
    assert any("is neither a logged output nor a known file" in w for w in warnings)
    load = next(a for a in assets.values() if a["name"] == "pipeline2.load_data[0]")
    assert upstreams(load) == []


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_old_content_is_found_in_git_history(built):
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=built, check=True, capture_output=True)

    git("init", "-q")
    git("add", "data/train.csv.merkl")
    git("-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "data v1")
    # New data, tracked, but model.bin is still the one built from the committed version.
    csv = built / "data" / "train.csv"
    old_oid = read_pointer(built / "data" / "train.csv.merkl").oid
    csv.unlink()  # a symlink into the store
    csv.write_text("x,y\n1,2\n2,4\n3,6\n4,8\n5,10\n6,12\n")
    run_ok("track", "data/train.csv")
    assert read_pointer(built / "data" / "train.csv.merkl").oid != old_oid
    assets, warnings = extract(built)
    assert warnings == []
    load = next(a for a in assets.values() if a["name"] == "pipeline2.load_data[0]")
    assert upstreams(load) == ["urn:merkl:demo:file:data/train.csv"]


def test_usable_with_other_sinks(built, httpserver: HTTPServer):
    httpserver.expect_request("/assets", method="PUT").respond_with_data("ok")
    sinks = (
        "  - name: console\n"
        "  - name: file\n    config: {path: ./assets.yaml, format: yaml}\n"
        f"  - name: http\n    config: {{url: '{httpserver.url_for('/assets')}', method: PUT}}\n"
    )
    result = run_cli("catalog", "run", str(recipe(built, sinks=sinks)))
    assert result.code == 0, result.err
    printed = [json.loads(line) for line in result.out.splitlines() if line.startswith("{")]
    assert len(printed) == 4
    assert len(yaml.safe_load((built / "assets.yaml").read_text())) == 4
    bodies = [json.loads(request.data) for request, _ in httpserver.log]
    assert sorted(b["urn"] for b in bodies) == sorted(a["urn"] for a in printed)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("path: ./nowhere", "merkl source: path './nowhere': not a merkl repository"),
        ("path: .\ncolour: red", "colour"),
        ('path: .\nmodel_patterns: [""]', "a pattern must not be empty"),
    ],
)
def test_bad_config(merkl_globals, config, message):
    result = run_recipe_file(recipe(merkl_globals, config), RunOptions(max_retries=0))
    assert not result.success
    assert message in result.error
    assert not (merkl_globals / "assets.ndjson").exists()


def test_listed_and_documented():
    result = run_cli("catalog", "info", "merkl")
    assert result.code == 0
    assert "merkl (source): Tracked files and pipeline outputs" in result.out
    assert "model_patterns (list" in result.out
