"""`merkl run` and the Python API emit OpenLineage run events to a loopback HTTP receiver."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import merkl.lineage
from merkl.hashing import hash_bytes
from merkl.repo import Repo
from tests.helpers import import_fresh, run_merkl_process, write_module

PIPELINE = """
import merkl
from merkl import task

@task
def count(data: bytes) -> int:
    return len(data)

@task
def double(x):
    return 2 * x

@task
def fail(x):
    raise ValueError("bad input")

def pipeline(*, broken: bool = False):
    n = double(count(merkl.read_file("data.txt")))
    merkl.write_file(n, "n.json")
    return fail(n) if broken else n
"""


def make_repo(root: Path) -> Path:
    Repo.init(root)
    (root / "data.txt").write_bytes(b"hello lineage")
    write_module(root, "pipe", PIPELINE)
    return root


def run(root: Path, receiver_url: str, *args: str):
    env = {**os.environ, "OPENLINEAGE_URL": receiver_url}
    return run_merkl_process("run", "pipe.pipeline", *args, cwd=root, env=env)


def by_job(events):
    found: dict[str, list[dict]] = {}
    for event in events:
        found.setdefault(event["job"]["name"], []).append(event)
    return found


def versions(datasets):
    return {d["name"]: d["facets"].get("version", {}).get("datasetVersion") for d in datasets}


def test_a_run_emits_pipeline_and_task_runs_with_parents_and_hashes(merkl_globals, receiver):
    root = make_repo(merkl_globals)
    result = run(root, receiver.url)
    assert result.code == 0, result.err
    assert "OpenLineage" not in result.err
    events = receiver.checked()
    jobs = by_job(events)
    assert set(jobs) == {"pipe.pipeline", "pipe.count", "pipe.double"}
    namespace = f"merkl://{root.name}"
    assert {e["job"]["namespace"] for e in events} == {namespace}
    pipeline = jobs["pipe.pipeline"]
    assert [e["eventType"] for e in pipeline] == ["START", "COMPLETE"]
    run_id = pipeline[0]["run"]["runId"]
    assert pipeline[1]["run"]["runId"] == run_id
    content_hash = hash_bytes(b"hello lineage")
    assert versions(pipeline[0]["inputs"]) == {"data.txt": content_hash}
    for name in ("pipe.count", "pipe.double"):
        start, complete = jobs[name]
        assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
        assert start["run"]["runId"] == complete["run"]["runId"] != run_id
        assert start["eventTime"] <= complete["eventTime"]
        for event in (start, complete):
            parent = event["run"]["facets"]["parent"]
            assert parent["run"]["runId"] == run_id
            assert (parent["job"]["namespace"], parent["job"]["name"]) == (
                namespace,
                "pipe.pipeline",
            )
        facet = complete["run"]["facets"]["merkl"]
        assert facet["cached"] is False
        assert len(facet["codeHash"]) == len(facet["argsHash"]) == 64
    count_out = jobs["pipe.count"][1]["outputs"]
    (count_hash,) = jobs["pipe.count"][1]["run"]["facets"]["merkl"]["outputs"]
    assert versions(count_out) == {f"output:{count_hash}": count_hash}
    assert versions(jobs["pipe.count"][1]["inputs"]) == {"data.txt": content_hash}
    # double reads count's output and writes n.json (write_file) beside its own output
    assert versions(jobs["pipe.double"][1]["inputs"]) == {f"output:{count_hash}": count_hash}
    (double_hash,) = jobs["pipe.double"][1]["run"]["facets"]["merkl"]["outputs"]
    assert set(versions(jobs["pipe.double"][1]["outputs"])) == {f"output:{double_hash}", "n.json"}
    # once written, the file's version is the content hash of its bytes
    written = versions(pipeline[1]["outputs"])
    assert written["n.json"] == hash_bytes((root / "n.json").read_bytes())
    summary = pipeline[1]["run"]["facets"]["merkl"]
    assert (summary["tasksRun"], summary["cached"], summary["cachedOutputs"]) == (2, False, [])


def test_a_cached_run_reports_what_came_from_cache(merkl_globals, receiver):
    root = make_repo(merkl_globals)
    assert run(root, receiver.url).code == 0
    receiver.events.clear()
    result = run(root, receiver.url)
    assert result.code == 0, result.err
    events = receiver.checked()
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("pipe.pipeline", "START"),
        ("pipe.pipeline", "COMPLETE"),
    ]
    facet = events[1]["run"]["facets"]["merkl"]
    assert facet["cached"] is True
    assert facet["tasksRun"] == 0
    assert [(c["job"], c["index"]) for c in facet["cachedOutputs"]] == [("pipe.double", 0)]
    assert f"output:{facet['cachedOutputs'][0]['output']}" in versions(events[1]["outputs"])


def test_a_failing_task_fails_its_run_and_the_pipeline_run(merkl_globals, receiver):
    root = make_repo(merkl_globals)
    result = run(root, receiver.url, "--broken")
    assert result.code == 1
    jobs = by_job(receiver.checked())
    assert [e["eventType"] for e in jobs["pipe.fail"]] == ["START", "FAIL"]
    assert [e["eventType"] for e in jobs["pipe.pipeline"]] == ["START", "FAIL"]
    error = jobs["pipe.fail"][1]["run"]["facets"]["errorMessage"]
    assert error["message"] == "ValueError: bad input"
    assert error["programmingLanguage"] == "python"
    parent = jobs["pipe.fail"][1]["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == jobs["pipe.pipeline"][0]["run"]["runId"]


def test_the_namespace_comes_from_merkl_toml(merkl_globals, receiver):
    root = make_repo(merkl_globals)
    with (root / "merkl.toml").open("a") as config:
        config.write('\n[lineage]\nnamespace = "ml-team"\n')
    assert run(root, receiver.url).code == 0
    events = receiver.checked()
    assert {e["job"]["namespace"] for e in events} == {"ml-team"}
    assert {d["namespace"] for e in events for d in e["inputs"] + e["outputs"]} == {"ml-team"}


def test_the_python_api_and_a_thread_pool_emit_too(merkl_globals, receiver, monkeypatch):
    make_repo(merkl_globals)
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    merkl.lineage.reset()
    pipe = import_fresh(merkl_globals, "pipe")
    value = merkl.evaluate([pipe.double(pipe.count(b"abc"))], executor="threads")[0]
    assert value == 6
    assert merkl.lineage.flush(10)
    jobs = by_job(receiver.checked())
    assert set(jobs) == {"evaluate:pipe.double", "pipe.count", "pipe.double"}
    assert all(len(events) == 2 for events in jobs.values())


def test_nothing_configured_sends_nothing_and_imports_no_client(merkl_globals, receiver):
    root = make_repo(merkl_globals)
    script = (
        "import sys, merkl, pipe\n"
        "print(pipe.pipeline().get())\n"
        "print(sorted(m for m in sys.modules if m.startswith('openlineage')))\n"
    )
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["26", "[]"]
    assert receiver.events == []


def test_an_interrupted_run_is_aborted_not_failed(merkl_globals):
    import time

    from merkl.lineage.config import LineageSettings
    from merkl.lineage.events import event_from_record, to_json
    from merkl.lineage.records import RunRecorder
    from merkl.lineage.run import PipelineRun

    from .validate import check_event

    make_repo(merkl_globals)
    pipe = import_fresh(merkl_globals, "pipe")
    run = PipelineRun(LineageSettings("ns"), "pipe.pipeline", merkl_globals, [pipe.pipeline()], 0)
    recorder = RunRecorder(run)
    for error, state in ((KeyboardInterrupt(), "ABORT"), (ValueError("x"), "FAIL")):
        (record,) = recorder.pipeline_end(time.time(), error)
        event = json.loads(to_json(event_from_record(record)))
        check_event(event)
        assert event["eventType"] == state
