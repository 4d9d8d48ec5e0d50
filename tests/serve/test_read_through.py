"""A served request reads through to a remote: outputs computed elsewhere are not recomputed."""

from __future__ import annotations

import json

from starlette.testclient import TestClient

from merkl.serve import ServeConfig, create_app
from tests.helpers import run_cli
from tests.serve.conftest import TARGETS, fill_cache, read_calls


def add_remote(root, url, read_through):
    with (root / "merkl.toml").open("a") as handle:
        handle.write(f'\n[remotes.origin]\nurl = "{url}"\nread_through = {read_through}\n')


def test_outputs_pushed_by_another_repo_are_fetched_not_computed(
    pipeline_repo, client_repo, tmp_path, monkeypatch
):
    remote = tmp_path / "remote"
    remote.mkdir()
    assert fill_cache(client_repo, "servepipe.pipeline", 3) == 11.0
    add_remote(client_repo.root, remote, "false")
    monkeypatch.chdir(client_repo.root)
    pushed = run_cli("push")
    assert pushed.code == 0, pushed.err
    monkeypatch.chdir(pipeline_repo.root)
    add_remote(pipeline_repo.root, remote, "true")
    computed_by_the_client = read_calls(pipeline_repo)

    with TestClient(create_app(ServeConfig(targets=TARGETS))) as client:
        response = client.post("/v1/run/servepipe.pipeline", content=json.dumps({"args": [3]}))
        assert response.status_code == 200, response.text
        assert response.json()["result"] == 11.0
        assert response.json()["stats"]["ran"] == 0
        # A pipeline the remote does not have is computed as usual.
        other = client.post("/v1/run/servepipe.pipeline", content=json.dumps({"args": [4]}))
        assert other.json()["stats"]["ran"] == 2
    assert read_calls(pipeline_repo) == [*computed_by_the_client, "square", "add"]
