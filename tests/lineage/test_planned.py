"""`merkl dag --format openlineage` prints the planned lineage as JobEvents, running nothing."""

from __future__ import annotations

import json
import os

from merkl.hashing import hash_bytes
from tests.helpers import run_cli, run_merkl_process

from .test_run_events import make_repo, versions
from .validate import check_event


def test_planned_lineage_matches_the_run_that_follows(merkl_globals, receiver):
    root = make_repo(merkl_globals)
    result = run_cli("dag", "--format", "openlineage", "pipe.pipeline")
    assert result.code == 0, result.err
    planned = [json.loads(line) for line in result.out.splitlines()]
    for event in planned:
        check_event(event)
        assert "run" not in event
        assert "eventType" not in event
    by_name = {e["job"]["name"]: e for e in planned}
    assert list(by_name) == ["pipe.count", "pipe.double", "pipe.pipeline"]
    assert versions(by_name["pipe.count"]["inputs"]) == {"data.txt": hash_bytes(b"hello lineage")}
    assert "n.json" in versions(by_name["pipe.double"]["outputs"])

    env = {**os.environ, "OPENLINEAGE_URL": receiver.url}
    ran = run_merkl_process("run", "pipe.pipeline", cwd=root, env=env)
    assert "2 task(s) run" in ran.err  # the dag ran nothing, so both tasks run now
    completes = {e["job"]["name"]: e for e in receiver.checked() if e["eventType"] == "COMPLETE"}
    for name in ("pipe.count", "pipe.double"):
        for side in ("inputs", "outputs"):
            assert {d["name"] for d in by_name[name][side]} == {
                d["name"] for d in completes[name][side]
            }
        assert versions(by_name[name]["inputs"]) == versions(completes[name]["inputs"])


def test_planned_lineage_to_a_file(merkl_globals):
    make_repo(merkl_globals)
    result = run_cli("dag", "-f", "openlineage", "-o", "lineage.ndjson", "pipe.pipeline")
    assert result.code == 0, result.err
    assert "planned lineage" in result.err
    lines = (merkl_globals / "lineage.ndjson").read_text().splitlines()
    assert len(lines) == 3
