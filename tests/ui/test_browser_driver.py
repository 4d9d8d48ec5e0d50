"""The Chromium driver itself: a missing Chromium fails the UI tests, it never skips them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.browser import chromium_path


def test_a_missing_chromium_fails_with_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"`chromium` is not on PATH: apt-get install"):
        chromium_path()
