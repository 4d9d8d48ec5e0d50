"""Remotes by URL scheme: a lazy registry with install hints (as fsspec's `known_implementations`).

A scheme maps to `"package.module:Class"` and the pip extra that provides its dependencies; the
module is imported on first use, so `import merkl` never imports boto3, redis or SQLAlchemy.
Other packages add kinds through the `merkl.remotes` entry-point group (name = URL scheme).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, NamedTuple

from merkl.errors import RemoteUnavailableError, UnknownRemoteError
from merkl.remotes.urls import expand_vars, scheme_of

if TYPE_CHECKING:
    from merkl.remotes.base import Remote


class RemoteKind(NamedTuple):
    path: str  # "module:Class"
    extra: str | None  # pip extra providing the dependencies, if any


_SQL = RemoteKind("merkl.remotes.sql:SqlRemote", "sql")
KNOWN_REMOTES: dict[str, RemoteKind] = {
    "file": RemoteKind("merkl.remotes.local:LocalRemote", None),
    "s3": RemoteKind("merkl.remotes.s3:S3Remote", "s3"),
    "redis": RemoteKind("merkl.remotes.redis:RedisRemote", "redis"),
    "rediss": RemoteKind("merkl.remotes.redis:RedisRemote", "redis"),
    "sqlite": _SQL,
    "postgresql": _SQL,
    "postgres": _SQL,
    "mysql": _SQL,
    "mariadb": _SQL,
    "tiered": RemoteKind("merkl.remotes.tiered:TieredRemote", None),
}


def known_schemes() -> list[str]:
    schemes = set(KNOWN_REMOTES)
    schemes.update(ep.name for ep in entry_points(group="merkl.remotes"))
    return sorted(schemes)


def get_remote_class(url: str) -> type[Remote]:
    """The `Remote` subclass for `url`'s scheme; imports it now."""
    scheme = scheme_of(url)
    kind = KNOWN_REMOTES.get(scheme)
    if kind is None:
        for ep in entry_points(group="merkl.remotes"):
            if ep.name == scheme:
                return ep.load()  # type: ignore[no-any-return]
        raise UnknownRemoteError(
            f"unknown remote URL scheme {scheme!r} in {url.split('://')[0]!r}…; expected one "
            f"of: {', '.join(known_schemes())} (or a plain directory path)",
            scheme=scheme,
        )
    module_name, _, class_name = kind.path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'merkl[{kind.extra}]'" if kind.extra else "reinstall merkl"
        raise RemoteUnavailableError(
            f"{scheme}:// remotes need a package that is not installed ({exc.name or exc}); "
            f"run: {hint}",
            scheme=scheme,
        ) from exc
    cls: type[Remote] = getattr(module, class_name)
    return cls


def open_remote(
    url: str,
    *,
    name: str | None = None,
    options: Mapping[str, Any] | None = None,
    where: str | None = None,
) -> Remote:
    """A remote for `url` after `${VAR}` expansion; `where` names the config key in errors."""
    label = where or (f"remote {name!r}" if name else "remote URL")
    expanded = expand_vars(url, label)
    cls = get_remote_class(expanded)
    opts = {
        key: expand_vars(value, f"{label} option {key!r}") if isinstance(value, str) else value
        for key, value in (options or {}).items()
    }
    return cls(expanded, name=name, options=opts)
