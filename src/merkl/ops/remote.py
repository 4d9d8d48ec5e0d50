"""`merkl remote add|list|remove`: manage the remotes in `merkl.toml` / `.merkl/config.toml`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from merkl.errors import RemoteUnavailableError, UnknownRemoteError, UsageError
from merkl.remotes.config import (
    COMMON_OPTIONS,
    add_remote,
    default_remote_name,
    remote_configs,
    remove_remote,
)
from merkl.remotes.urls import mask_url, scheme_of
from merkl.repo import Repo


def remote_add(
    repo: Repo,
    name: str,
    url: str,
    options: Sequence[str] = (),
    *,
    default: bool = False,
    local: bool = False,
    force: bool = False,
) -> str:
    """Add a remote (replace one of that name with `force`); `options` are `key=value`
    strings. Returns a message.

    Raises:
        UsageError: the name exists and `force` is false, or a bad URL or option.
    """
    parsed = parse_options(options)
    _check_option_names(url, parsed)
    existing = remote_configs(repo).get(name)
    if existing is not None and not force:
        raise UsageError(
            f"remote {name!r} already exists in {repo.relpath(existing.file)} "
            f"({mask_url(existing.url)}); pass --force to replace it"
        )
    file = add_remote(repo, name, url, parsed, default=default, local=local)
    suffix = " (default)" if default else ""
    done = f"written to {repo.relpath(file)}"
    if existing is not None:
        done = f"replaced in {repo.relpath(file)} (was {mask_url(existing.url)})"
    return f"remote {name!r} → {mask_url(url)} {done}{suffix}"


def remote_list(repo: Repo) -> list[tuple[str, str, bool, str]]:
    """(name, masked URL, is default, file) of each configured remote."""
    default = default_remote_name(repo)
    return [
        (name, mask_url(config.url), name == default, repo.relpath(config.file))
        for name, config in sorted(remote_configs(repo).items())
    ]


def remote_remove(repo: Repo, name: str) -> str:
    files = remove_remote(repo, name)
    return f"removed remote {name!r} from {', '.join(repo.relpath(f) for f in files)}"


def parse_options(options: Sequence[str]) -> dict[str, Any]:
    """`["jobs=4", "read_through=true"]` → `{"jobs": 4, "read_through": True}`."""
    parsed: dict[str, Any] = {}
    for option in options:
        key, sep, raw = option.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or key == "url":
            raise UsageError(
                f"option {option!r}: expected KEY=VALUE after the URL, e.g. "
                f"endpoint_url=http://127.0.0.1:9000 or read_through=true",
                exit_code=2,
            )
        parsed[key] = _value(raw.strip())
    return parsed


def _value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if raw.isdigit():
        return int(raw)
    return raw


def _check_option_names(url: str, options: dict[str, Any]) -> None:
    if scheme_of(url) == "tiered":
        known: frozenset[str] = frozenset()
    else:
        from merkl.remotes import get_remote_class

        try:
            known = get_remote_class(url).known_options
        except (RemoteUnavailableError, UnknownRemoteError):
            return  # unknown scheme: add_remote says so; missing package: checked on use
    unknown = set(options) - COMMON_OPTIONS - known
    if unknown:
        allowed = ", ".join(sorted(COMMON_OPTIONS | known))
        raise UsageError(
            f"unknown option(s) {', '.join(sorted(unknown))} for a {scheme_of(url)} remote; "
            f"allowed: {allowed}",
            exit_code=2,
        )
