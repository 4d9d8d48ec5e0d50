"""Files in pipelines: `write_file(track=True)` tracks like `merkl track`; file inputs hash
by content through the stat cache."""

from __future__ import annotations

import json
import os
import time

import pytest
from tests.helpers import import_fresh, run_cli, write_module

import merkl
import merkl.cache.stat_cache
from merkl.pointer import read_pointer
from merkl.session import Session, use_session

PIPELINE = """
    from merkl import task, write_file, read_file

    @task
    def count_lines(data):
        return len(data.splitlines())

    def pipeline():
        out = count_lines(read_file("input.csv"))
        write_file(out, "count.json", track=True)
        return out
"""


def test_write_file_track_links_and_status_sees_it(repo):
    (repo.root / "input.csv").write_text("a\nb\nc\n")
    write_module(repo.root, "pipe", PIPELINE)
    result = run_cli("run", "pipe.pipeline")
    assert result.code == 0, result.err
    out = repo.root / "count.json"
    assert out.is_symlink()
    assert out.read_text() == "3"
    pointer = read_pointer(repo.root / "count.json.merkl")
    assert pointer.output is not None
    assert pointer.serializer == "json"
    assert "/count.json" in (repo.root / ".gitignore").read_text().splitlines()
    rows = json.loads(run_cli("status", "--json").out)
    assert rows == [
        {
            "path": "count.json",
            "type": "file",
            "state": "clean",
            "hash": "blake3:" + pointer.oid,
            "size": 1,
        }
    ]
    # the pointer gives the output back in another session
    with use_session(Session(repo)):
        assert merkl.load("count.json").get() == 3
    # running again rewrites nothing
    before = (repo.root / "count.json.merkl").read_bytes()
    assert run_cli("run", "pipe.pipeline").code == 0
    assert (repo.root / "count.json.merkl").read_bytes() == before


def test_file_input_hash_follows_content_and_is_stat_cached(repo, monkeypatch):
    data = repo.root / "input.csv"
    data.write_text("a\nb\n")
    os.utime(data, (time.time() - 3600,) * 2)  # a file written just now is read every time
    module = import_fresh(repo.root, write_module(repo.root, "pipe2", PIPELINE).stem)
    with use_session(Session(repo)):
        first = module.count_lines(merkl.read_file("input.csv"))
        calls = []
        real = merkl.cache.stat_cache.hash_file
        monkeypatch.setattr(
            merkl.cache.stat_cache, "hash_file", lambda p: calls.append(p) or real(p)
        )
        same = module.count_lines(merkl.read_file("input.csv"))
        assert same.hash == first.hash
        assert calls == []
        data.write_text("a\nb\nc\n")
        changed = module.count_lines(merkl.read_file("input.csv"))
        assert changed.hash != first.hash
        assert len(calls) == 1
        assert changed.get() == 3


def test_file_input_on_a_tracked_file(repo):
    (repo.root / "input.csv").write_text("x\ny\n")
    assert run_cli("track", "input.csv").code == 0
    with use_session(Session(repo)):
        ref = merkl.read_file("input.csv")
        assert ref.hash == read_pointer(repo.root / "input.csv.merkl").oid
        assert ref.get() == b"x\ny\n"


def test_missing_input_file_names_it(repo):
    with use_session(Session(repo)), pytest.raises(FileNotFoundError, match=r"'nope\.csv'"):
        merkl.read_file("nope.csv")


def test_dry_run_lists_file_inputs(repo):
    (repo.root / "input.csv").write_text("a\n")
    write_module(repo.root, "pipe3", PIPELINE)
    result = run_cli("run", "--dry", "pipe3.pipeline")
    assert result.code == 0, result.err
    assert "file input.csv" in result.out + result.err
    assert not (repo.root / "count.json").exists()
