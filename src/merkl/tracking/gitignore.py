"""Keeping tracked data out of git: one `/name` line in the `.gitignore` beside the data.

Like DVC, the entry goes into the `.gitignore` of the data's own folder, anchored with `/` so
it matches only that file, with glob characters escaped so `data[1].csv` means itself.
"""

from __future__ import annotations

from pathlib import Path

from merkl.errors import TrackingError

GITIGNORE = ".gitignore"
_GLOB_CHARS = "\\*?["


def gitignore_entry(name: str) -> str:
    """The anchored, escaped `.gitignore` line that matches exactly the file `name`."""
    if "\n" in name or "\r" in name:
        raise TrackingError(
            f"cannot track {name!r}: git cannot ignore a name containing a line break; "
            f"rename the file",
            path=name,
        )
    escaped = "".join("\\" + c if c in _GLOB_CHARS else c for c in name)
    stripped = escaped.rstrip(" ")
    # git drops unescaped trailing spaces
    escaped = stripped + "\\ " * (len(escaped) - len(stripped))
    return "/" + escaped


def with_entry(text: str, entry: str) -> str | None:
    """`text` with `entry` appended, or None when the line is already there."""
    lines = text.splitlines()
    if entry in lines:
        return None
    prefix = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{prefix}{entry}\n"


def without_entry(text: str, entry: str) -> str | None:
    """`text` without the `entry` line, or None when it has no such line."""
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if line.rstrip("\r\n") != entry]
    return None if len(kept) == len(lines) else "".join(kept)


def read_gitignore(folder: Path) -> str:
    try:
        return (folder / GITIGNORE).read_text()
    except FileNotFoundError:
        return ""
