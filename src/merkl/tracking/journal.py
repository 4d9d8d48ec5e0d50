"""Intent records: what a `track` or `checkout` in progress is about to link.

Before it moves or links anything, the command writes `.merkl/journal/<pid>-<n>.json` naming
itself and every object it will link, and removes it when done. After a kill -9 the record
stays: `merkl gc` keeps the objects it names (some work-tree files are already links to them
while no pointer names them yet), `merkl verify` reports the command as unfinished, and running
the same command again completes it and removes the record.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from merkl.cache.lock import pid_alive
from merkl.fs import write_new
from merkl.repo import Repo

JOURNAL_DIR = "journal"
_counter = itertools.count()


@dataclass(frozen=True)
class Intent:
    """One intent record as found on disk."""

    path: str
    command: str
    pid: int
    oids: tuple[str, ...]

    @property
    def unfinished(self) -> bool:
        """True when the process that wrote it is gone (killed before it finished)."""
        return not pid_alive(self.pid)


@contextlib.contextmanager
def intent(repo: Repo, command: str, oids: Iterable[str]) -> Iterator[None]:
    """Record `command`'s intent to link `oids` while the block runs.

    On success the record goes, with older records of the same command left by killed runs
    (this run has just done what they meant to do). On an exception the command undid its
    work, so its record goes too.
    """
    folder = repo.dot_dir / JOURNAL_DIR
    folder.mkdir(exist_ok=True)
    record = str(folder / f"{os.getpid()}-{next(_counter)}.json")
    data = {"command": command, "pid": os.getpid(), "oids": sorted(set(oids))}
    # Not fsynced: it guards against a killed process, whose writes the page cache keeps;
    # after a power loss the links it protects may be gone as well.
    write_new(record, orjson.dumps(data), fsync=False)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(record)
    for old in read_intents(repo):
        if old.command == command and old.unfinished:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(old.path)


def read_intents(repo: Repo) -> list[Intent]:
    """Every intent record in the repository (unreadable ones are skipped)."""
    found = []
    with contextlib.suppress(FileNotFoundError), os.scandir(repo.dot_dir / JOURNAL_DIR) as it:
        for entry in it:
            if not entry.name.endswith(".json"):
                continue
            try:
                with open(entry.path, "rb") as handle:
                    data = orjson.loads(handle.read())
                found.append(
                    Intent(entry.path, str(data["command"]), int(data["pid"]), tuple(data["oids"]))
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue  # torn by a crash while being written: nothing was linked yet
    return sorted(found, key=lambda i: i.path)
