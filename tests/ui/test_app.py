"""`merkl ui`'s JSON twins, its read-only guard and its one write, through the ASGI app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from merkl.repo import Repo
from merkl.ui.app import create_app
from tests.ui.conftest import ok


@pytest.fixture
def client(ui_repo: Repo) -> Iterator[TestClient]:
    with TestClient(create_app(ui_repo), base_url="http://127.0.0.1:8765") as test_client:
        yield test_client


@pytest.fixture
def writer(ui_repo: Repo) -> Iterator[TestClient]:
    with TestClient(
        create_app(ui_repo, allow_writes=True), base_url="http://127.0.0.1:8765"
    ) as test_client:
        yield test_client


def outputs(client: TestClient, url: str) -> dict[str, dict[str, object]]:
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    return {n["label"]: n for n in answer.json()["nodes"] if n["kind"] == "output"}


def test_overview_twin(client: TestClient) -> None:
    data = client.get("/api/overview").json()
    pipelines = {p["target"]: p for p in data["pipelines"]}
    assert set(pipelines) == {"pipeline1.my_pipeline", "pipeline2.pipeline"}
    assert pipelines["pipeline2.pipeline"]["parameters"] == ["data", "epochs"]
    assert set(pipelines["pipeline2.pipeline"]["tasks"]) == {
        "pipeline2.load_data",
        "pipeline2.train",
        "pipeline2.evaluate",
    }
    assert data["file_states"] == {"clean": 2, "modified": 1}
    assert [r["name"] for r in data["remotes"]] == ["origin"]
    assert data["remotes"][0]["default"] is True
    assert len(data["runs"]) == 6


def test_dag_twin_has_states_runs_and_reasons(client: TestClient) -> None:
    nodes = outputs(client, "/api/dag/pipeline2.pipeline?epochs=100")
    assert {k: v["state"] for k, v in nodes.items()} == {
        "pipeline2.load_data[0]": "cached",
        "pipeline2.load_data[1]": "cached",
        "pipeline2.train": "missing",
        "pipeline2.evaluate": "missing",
    }
    cached = nodes["pipeline2.load_data[0]"]
    assert set(cached["run"]) == {"time", "duration", "size"}  # type: ignore[arg-type]
    assert "why" not in cached
    reasons = nodes["pipeline2.train"]["why"]["reasons"]  # type: ignore[index]
    assert [r["kind"] for r in reasons] == ["argument"]
    assert reasons[0]["argument"] == "epochs"
    evaluate = nodes["pipeline2.evaluate"]["why"]["reasons"]  # type: ignore[index]
    assert [r["kind"] for r in evaluate] == ["upstream"]


def test_dag_follows_an_edited_module(client: TestClient, ui_repo: Repo) -> None:
    assert outputs(client, "/api/dag/pipeline2.pipeline")["pipeline2.train"]["state"] == "cached"
    source = ui_repo.root / "pipeline2.py"  # edited as a user would: no import machinery
    source.write_text(source.read_text().replace("round(w, 6)", "round(w, 5)"))
    train = outputs(client, "/api/dag/pipeline2.pipeline")["pipeline2.train"]
    assert train["state"] == "missing"
    assert train["why"]["reasons"][0]["kind"] == "code"  # type: ignore[index]


def test_fill_missing_and_arguments(client: TestClient) -> None:
    nodes = outputs(client, "/api/dag/pipeline1.my_pipeline")
    assert {n["state"] for n in nodes.values()} == {"unknown"}
    assert {
        n["state"]
        for n in outputs(client, "/api/dag/pipeline1.my_pipeline?input_value=42").values()
    } == {"cached"}
    data = client.get("/api/dag/pipeline1.my_pipeline?input_value=7").json()
    assert data["args"] == ["7"]
    assert data["counts"] == {"cached": 0, "missing": 2, "unknown": 0}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/api/dag/pipeline2.pipeline?epoch=3", "pipeline2.pipeline has no parameter 'epoch'"),
        ("/api/dag/nothere.pipeline", "'nothere.pipeline' is not a pipeline or task of this"),
        ("/api/dag/pipeline2", "'pipeline2' is not a pipeline or task of this repository"),
        ("/api/dag/pipeline2.pipeline?_view=tiny", "_view='tiny': expected full or collapsed"),
        ("/api/runs?limit=x", "?limit='x' is not a number"),
        ("/api/outputs/abc/remotes", "'abc' is not an output hash"),
    ],
)
def test_bad_requests_say_what_is_wrong(client: TestClient, url: str, message: str) -> None:
    answer = client.get(url)
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert "\n" not in answer.json()["error"]


def test_runs_filters(client: TestClient) -> None:
    data = client.get("/api/runs?task=train").json()
    assert [r["label"] for r in data["runs"]] == ["pipeline2.train"]
    assert "pipeline1.task1" in data["tasks"]
    assert len(client.get("/api/runs?limit=2").json()["runs"]) == 2
    assert len(client.get("/api/runs?since=1").json()["runs"]) == 6
    # 3.6 ms: the fixture's track, push and edit came after the runs
    assert client.get("/api/runs?since=0.000001").json()["runs"] == []


def test_files_twin_and_remotes(client: TestClient) -> None:
    files = {f["path"]: f for f in client.get("/api/files").json()["files"]}
    assert files["data/notes.txt"]["state"] == "modified"
    assert files["data/train.csv"]["state"] == "clean"
    assert "remotes" not in files["data/train.csv"]
    checked = {f["path"]: f for f in client.get("/api/files?remotes=1").json()["files"]}
    assert checked["data/train.csv"]["remotes"] == ["origin"]
    model = outputs(client, "/api/dag/pipeline2.pipeline")["pipeline2.train"]
    held = client.get(f"/api/outputs/{model['hash']}/remotes").json()
    assert held["remotes"] == ["origin"]


def test_lineage_twin(client: TestClient) -> None:
    assets = {a["name"]: a for a in client.get("/api/lineage").json()["assets"]}
    assert assets["model.bin"]["type"] == "model"
    (train,) = assets["model.bin"]["upstreams"]
    assert assets["pipeline2.train"]["urn"] == train
    names = [a["name"] for a in client.get("/api/lineage").json()["assets"]]
    assert names.index("train.csv") < names.index("pipeline2.train") < names.index("model.bin")


def test_read_only_by_default(client: TestClient, ui_repo: Repo) -> None:
    model = outputs(client, "/api/dag/pipeline2.pipeline")["pipeline2.train"]
    answer = client.post(f"/api/outputs/{model['hash']}/forget", json={"confirm": model["hash"]})
    assert answer.status_code == 403
    assert "--allow-writes" in answer.json()["error"]
    for path in ("/", "/files", "/api/files", "/dag/pipeline2.pipeline"):
        assert client.post(path).status_code == 405
    assert ui_repo.index.find_output(str(model["hash"])) is not None


def test_forget_needs_confirmation_and_the_same_origin(writer: TestClient, ui_repo: Repo) -> None:
    model = outputs(writer, "/api/dag/pipeline2.pipeline")["pipeline2.train"]
    url = f"/api/outputs/{model['hash']}/forget"
    assert writer.post(url).status_code == 400
    assert writer.post(url, json={"confirm": "yes"}).status_code == 400
    cross = writer.post(
        url, json={"confirm": model["hash"]}, headers={"Origin": "http://evil.example"}
    )
    assert cross.status_code == 403
    assert writer.post(url, json={"confirm": model["hash"]}).json() == {"forgot": model["hash"]}
    train = outputs(writer, "/api/dag/pipeline2.pipeline")["pipeline2.train"]
    assert train["state"] == "missing"
    assert train["why"]["reasons"][0]["kind"] == "evicted"  # type: ignore[index]
    assert writer.post(url, json={"confirm": model["hash"]}).status_code == 404
    ok("run", "pipeline2.pipeline")  # computed again
    assert outputs(writer, "/api/dag/pipeline2.pipeline")["pipeline2.train"]["state"] == "cached"


def test_pages_link_nothing_outside(client: TestClient) -> None:
    static = Path(__file__).resolve().parents[2] / "src" / "merkl" / "ui" / "static"
    texts = [p.read_text() for p in static.iterdir()]
    for path in ("/", "/runs", "/files", "/lineage", "/dag/pipeline2.pipeline"):
        answer = client.get(path)
        assert answer.status_code == 200
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        texts.append(answer.text)
    for text in texts:
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, not a link
        assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text) == []


def test_version_changes_with_the_repository(client: TestClient, ui_repo: Repo) -> None:
    before = client.get("/api/version").json()["version"]
    assert client.get("/api/version").json()["version"] == before
    (ui_repo.root / "data" / "notes.txt").write_text("edited again, longer\n")
    after_edit = client.get("/api/version").json()["version"]
    assert after_edit != before
    ok("run", "pipeline1.my_pipeline", "5")
    assert client.get("/api/version").json()["version"] != after_edit


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/api/dag/os.system?command=touch+pwned", "'os.system' is not a pipeline or task"),
        ("/dag/pipeline2.train", None),  # a task: allowed
        ("/api/dag/pipeline1.nothing", "'pipeline1.nothing' is not a pipeline or task"),
    ],
)
def test_only_the_repositorys_pipelines_are_called(
    client: TestClient, ui_repo: Repo, url: str, message: str | None
) -> None:
    answer = client.get(url)
    if message is None:
        assert answer.status_code == 200
        return
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert not (ui_repo.root / "pwned").exists()


def test_a_repository_module_shadowed_by_an_installed_one_is_refused(
    client: TestClient, ui_repo: Repo
) -> None:
    (ui_repo.root / "json.py").write_text(
        "from merkl import task\n@task\ndef dumps(x):\n    return x\n"
    )
    answer = client.get("/api/dag/json.dumps?x=1")
    assert answer.status_code == 400
    assert "not from this repository" in answer.json()["error"]


def test_other_sites_and_host_names_are_refused(client: TestClient) -> None:
    cross = client.get("/api/overview", headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert "other sites" in cross.json()["error"]
    rebound = client.get("/api/overview", headers={"Host": "attacker.example:8765"})
    assert rebound.status_code == 403
    assert "'attacker.example'" in rebound.json()["error"]
    for host in ("localhost:8765", "[::1]:8765", "127.0.0.1"):
        assert client.get("/api/version", headers={"Host": host}).status_code == 200
    same = client.get("/api/overview", headers={"Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 200


def test_a_pipeline_that_raises_is_a_500_naming_it(client: TestClient, ui_repo: Repo) -> None:
    (ui_repo.root / "raising.py").write_text(
        "from merkl import task\n\n@task\ndef step(x):\n    return x\n\n"
        "def pipeline(x: int):\n    if x > 1:\n        raise RuntimeError('x is too big')\n"
        "    return step(x)\n"
    )
    assert client.get("/api/dag/raising.pipeline?x=1").status_code == 200
    answer = client.get("/api/dag/raising.pipeline?x=2")
    assert answer.status_code == 500
    assert answer.json()["error"] == "pipeline raising.pipeline raised RuntimeError: x is too big"
    page = client.get("/dag/raising.pipeline?x=2")
    assert page.status_code == 500
    assert "x is too big" in page.text
    assert client.get("/api/version").status_code == 200  # still serving


def test_pull_brings_a_forgotten_output_back_from_the_remote(
    writer: TestClient, client: TestClient, ui_repo: Repo
) -> None:
    train = outputs(writer, "/api/dag/pipeline2.pipeline")["pipeline2.train"]
    digest = str(train["hash"])
    assert client.post(f"/api/outputs/{digest}/pull", json={"confirm": digest}).status_code == 403
    store = ui_repo.store
    oid = ui_repo.index.find_output(digest).oid  # type: ignore[union-attr]
    writer.post(f"/api/outputs/{digest}/forget", json={"confirm": digest}).raise_for_status()
    store.remove(oid)  # as after `merkl gc`: only the remote has it now
    assert outputs(writer, "/api/dag/pipeline2.pipeline")["pipeline2.train"]["state"] == "missing"
    answer = writer.post(f"/api/outputs/{digest}/pull", json={"confirm": digest})
    assert answer.status_code == 200, answer.text
    assert answer.json()["remote"] == "origin"
    assert outputs(writer, "/api/dag/pipeline2.pipeline")["pipeline2.train"]["state"] == "cached"
    unknown = "ab" * 32
    missing = writer.post(f"/api/outputs/{unknown}/pull", json={"confirm": unknown})
    assert missing.status_code == 400
    assert "the remote does not hold it" in missing.json()["error"]


def test_a_dag_page_loaded_again_reuses_the_built_pipeline_until_an_input_changes(
    client: TestClient, ui_repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from merkl.ui import dag_view

    built: list[str] = []
    call_pipeline = dag_view.call_pipeline
    monkeypatch.setattr(
        dag_view,
        "call_pipeline",
        lambda target, *a, **kw: built.append(target) or call_pipeline(target, *a, **kw),
    )
    first = outputs(client, "/api/dag/pipeline2.pipeline")
    again = outputs(client, "/api/dag/pipeline2.pipeline")
    assert again == first
    assert len(built) == 1
    assert outputs(client, "/api/dag/pipeline2.pipeline?epochs=7") != first
    assert len(built) == 2  # other arguments: built
    # The cache changed (an output forgotten): the states follow, from the memoized DAG.
    forgotten = str(first["pipeline2.evaluate"]["hash"])
    ui_repo.index.remove_outputs([forgotten])
    assert outputs(client, "/api/dag/pipeline2.pipeline")["pipeline2.evaluate"]["state"] == (
        "missing"
    )
    assert len(built) == 2
    # The input file changed: built again, with the file's new hash.
    with (ui_repo.root / "data" / "train.csv").open("a") as handle:
        handle.write("9.0,19.0\n")
    changed = outputs(client, "/api/dag/pipeline2.pipeline")
    assert len(built) == 3
    assert changed["pipeline2.load_data[0]"]["hash"] != first["pipeline2.load_data[0]"]["hash"]
    assert changed["pipeline2.load_data[0]"]["state"] == "missing"
