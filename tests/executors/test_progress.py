"""The progress bar shows on a terminal only."""

from __future__ import annotations

import io
import sys

from merkl.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_of_tasks_done(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("CI", raising=False)
    with Progress("running (test)", "tasks", 3) as progress:
        for _ in range(3):
            progress.advance()
    assert progress.done == 3
    assert "running (test)" in terminal.getvalue()
    assert "3/3" in terminal.getvalue()


def test_ci_and_pipes_get_nothing(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("CI", "true")
    with Progress("running", "tasks", 2) as progress:
        progress.advance()
    assert terminal.getvalue() == ""
    pipe = io.StringIO()
    monkeypatch.delenv("CI")
    monkeypatch.setattr(sys, "stderr", pipe)
    with Progress("running", "tasks", 2) as progress:
        progress.advance()
    assert pipe.getvalue() == ""
    assert progress.done == 1
