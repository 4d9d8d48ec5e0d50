"""The directory remote runs the contract against a folder in the test's tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.remotes.contract import RemoteContract


class TestLocalRemote(RemoteContract):
    @pytest.fixture
    def remote_spec(self, tmp_path: Path):
        return str(tmp_path / "remote"), {}

    @pytest.fixture
    def unusable_spec(self, tmp_path: Path):
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        return str(blocker / "remote"), {}


class TestFileUrlRemote(RemoteContract):
    @pytest.fixture
    def remote_spec(self, tmp_path: Path):
        return (tmp_path / "remote").as_uri(), {}

    @pytest.fixture
    def unusable_spec(self, tmp_path: Path):
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        return (blocker / "remote").as_uri(), {}


@pytest.mark.parametrize(("options", "links"), [({}, 2), ({"hardlink": False}, 1)])
def test_objects_are_hard_linked_on_the_same_filesystem(tmp_path: Path, options, links):
    from merkl.remotes import open_remote
    from merkl.remotes.records import object_key
    from tests.remotes.contract import fill, make_store

    store = make_store(tmp_path / "local")
    (oid,) = fill(store, 1)
    remote = open_remote(str(tmp_path / "remote"), name="r", options=options)
    remote.push(store, [oid])
    assert (tmp_path / "remote" / object_key(oid)).stat().st_nlink == links
    fresh = make_store(tmp_path / "fresh")
    assert not remote.pull(fresh, [oid]).failed
    assert fresh.oid_to_path(oid).stat().st_nlink == (3 if links == 2 else 1)


def test_progress_bar_draws_on_stderr(capsys):
    from merkl.progress import Progress

    with Progress("push to r", "objects", enabled=True) as progress:
        progress.start(3)
        progress.advance(2)
        progress.start(1)  # a later stage (another tier) restarts the count
        progress.advance(1)
    assert capsys.readouterr().out == ""
