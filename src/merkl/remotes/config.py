"""Remotes in the configuration: read `[remotes.NAME]` tables, write them with tomlkit.

```toml
[core]
remote = "origin"                 # the default remote

[remotes.origin]
url = "s3://bucket/project"
endpoint_url = "${S3_ENDPOINT}"   # options; `${VAR}` is read from the environment

[remotes.fast]
url = "redis://:${REDIS_PASSWORD}@cache:6379/0"

[remotes.both]
url = "tiered:fast,origin"        # Redis in front of S3
```

Remotes live in the committed `merkl.toml` (so a fresh clone knows them) unless added with
`--local`, which writes the git-ignored `.merkl/config.toml`. tomlkit keeps the user's comments.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merkl.errors import ConfigError, UnknownRemoteError, UsageError
from merkl.fs import write_atomic
from merkl.remotes.urls import expand_vars, has_literal_password, mask_url, scheme_of
from merkl.repo import LOCAL_CONFIG, PROJECT_CONFIG, Repo, read_toml

if TYPE_CHECKING:
    import tomlkit

    from merkl.remotes.base import Remote

REMOTE_CACHE = "remote-cache"  # folder under .merkl/ (see Remote.local_cache)
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
#: Options every kind accepts.
COMMON_OPTIONS = frozenset({"read_through", "trust_pickle", "jobs", "lease", "lease_ttl"})
_BOOL_OPTIONS = frozenset({"read_through", "trust_pickle", "lease"})


@dataclass(frozen=True)
class RemoteConfig:
    name: str
    url: str
    options: dict[str, Any]
    file: Path  # where it is defined

    @property
    def is_tiered(self) -> bool:
        return scheme_of(self.url) == "tiered"

    def flag(self, option: str) -> bool:
        return bool(self.options.get(option, False))


def remote_configs(repo: Repo) -> dict[str, RemoteConfig]:
    """Every configured remote (local config wins over the project's, remote by remote)."""
    found: dict[str, RemoteConfig] = {}
    for file in (repo.root / PROJECT_CONFIG, repo.dot_dir / LOCAL_CONFIG):
        table = read_toml(file).get("remotes", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{file}: [remotes] must be a table of tables", path=file)
        for name, body in table.items():
            found[name] = _parse(name, body, file)
    return found


def _parse(name: str, body: Any, file: Path) -> RemoteConfig:
    key = f"remotes.{name}"
    if not isinstance(body, dict):
        raise ConfigError(f"{file}: [{key}] must be a table with a 'url'", path=file, key=key)
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f'{file}: [{key}] needs url = "…" (a string)', path=file, key=key)
    if has_literal_password(url):
        raise ConfigError(
            f"{file}: [{key}] url {mask_url(url)!r} contains a password; replace it with a "
            f"${{VAR}} reference and export VAR",
            path=file,
            key=key,
        )
    options = {k: v for k, v in body.items() if k != "url"}
    for option in _BOOL_OPTIONS & set(options):
        if not isinstance(options[option], bool):
            raise ConfigError(
                f"{file}: {key}.{option} must be true or false, got {options[option]!r}",
                path=file,
                key=f"{key}.{option}",
            )
    jobs = options.get("jobs")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(
            f"{file}: {key}.jobs must be a positive integer, got {jobs!r}",
            path=file,
            key=f"{key}.jobs",
        )
    ttl = options.get("lease_ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
        raise ConfigError(
            f"{file}: {key}.lease_ttl must be a positive number of seconds, got {ttl!r}",
            path=file,
            key=f"{key}.lease_ttl",
        )
    return RemoteConfig(name, url, options, file)


def default_remote_name(repo: Repo) -> str | None:
    """`[core] remote`, or the only configured remote."""
    core = repo.config.get("core", {})
    name = core.get("remote") if isinstance(core, dict) else None
    if isinstance(name, str) and name:
        return name
    configs = remote_configs(repo)
    return next(iter(configs)) if len(configs) == 1 else None


def get_remote_config(repo: Repo, name: str | None = None) -> RemoteConfig:
    """The named remote's settings (default: the default remote)."""
    configs = remote_configs(repo)
    if name is None:
        name = default_remote_name(repo)
        if name is None:
            if not configs:
                raise UsageError(
                    "no remote configured; add one with `merkl remote add NAME URL --default`"
                )
            raise UsageError(
                f"several remotes are configured ({', '.join(sorted(configs))}) and none is "
                f"the default; pass --remote NAME or run `merkl remote add NAME URL --default`"
            )
    try:
        return configs[name]
    except KeyError:
        known = ", ".join(sorted(configs)) or "none"
        raise UnknownRemoteError(
            f"no remote {name!r} in {repo.root / PROJECT_CONFIG} or "
            f"{repo.dot_dir / LOCAL_CONFIG}; known: {known}",
            name=name,
        ) from None


def get_remote(repo: Repo, name: str | None = None, _seen: tuple[str, ...] = ()) -> Remote:
    """Open the named remote (default: the default one); tiers are opened recursively."""
    from merkl.remotes import get_remote_class, open_remote

    config = get_remote_config(repo, name)
    where = f"{config.file}: remotes.{config.name}"
    if config.name in _seen:
        raise ConfigError(
            f"{where}: tiered remotes form a cycle ({' → '.join((*_seen, config.name))})",
            key=f"remotes.{config.name}",
        )
    options = dict(config.options)
    if config.is_tiered:
        names = parse_tiers(config.url, where)
        options["tiers"] = [get_remote(repo, n, (*_seen, config.name)) for n in names]
        url = config.url
    else:
        url = anchor_path(repo, expand_vars(config.url, where))
        cls = get_remote_class(url)
        unknown = set(options) - COMMON_OPTIONS - cls.known_options
        if unknown:
            allowed = ", ".join(sorted(COMMON_OPTIONS | cls.known_options))
            raise ConfigError(
                f"{where}: unknown option(s) {', '.join(sorted(unknown))}; allowed: {allowed}",
                key=f"remotes.{config.name}",
            )
    remote = open_remote(url, name=config.name, options=options, where=where)
    remote.local_cache = repo.dot_dir / REMOTE_CACHE
    return remote


def configured_jobs(remote: Remote) -> int | None:
    """The remote's `jobs` option, if set (the `--jobs` flag wins over it)."""
    jobs = remote.options.get("jobs")
    return jobs if isinstance(jobs, int) and not isinstance(jobs, bool) else None


def parse_tiers(url: str, where: str) -> list[str]:
    names = [n.strip() for n in url.partition(":")[2].split(",") if n.strip()]
    if not names or not all(_NAME.match(n) for n in names):
        raise ConfigError(
            f"{where}: tiered URL {url!r} must list remote names, fastest first, e.g. "
            f"'tiered:cache,origin'",
            key=where,
        )
    return names


def anchor_path(repo: Repo, url: str) -> str:
    """A relative directory remote is relative to the repository root."""
    if scheme_of(url) == "file" and "://" not in url and not Path(url).expanduser().is_absolute():
        return os.path.normpath(repo.root / url)
    return url


# -- writing ---------------------------------------------------------------------------------
def add_remote(
    repo: Repo,
    name: str,
    url: str,
    options: dict[str, Any],
    *,
    default: bool = False,
    local: bool = False,
) -> Path:
    """Write `[remotes.NAME]` (and `[core] remote` with `default`); returns the file written."""
    if not _NAME.match(name):
        raise UsageError(
            f"remote name {name!r} may only contain letters, digits, '-' and '_'", exit_code=2
        )
    if has_literal_password(url):
        raise UsageError(
            f"URL {mask_url(url)!r} contains a password, which would be written to a config "
            f"file; write ${{VAR}} in its place (e.g. redis://:${{REDIS_PASSWORD}}@host) and "
            f"export VAR",
            exit_code=2,
        )
    from merkl.remotes import KNOWN_REMOTES, known_schemes

    scheme = scheme_of(url)
    if scheme not in KNOWN_REMOTES and scheme not in known_schemes():
        raise UsageError(
            f"unknown remote URL scheme {scheme!r}; expected one of: "
            f"{', '.join(known_schemes())} (or a plain directory path)",
            exit_code=2,
        )
    if scheme == "tiered":
        configs = remote_configs(repo)
        missing = [n for n in parse_tiers(url, "URL") if n not in configs]
        if missing:
            raise UsageError(
                f"tiered remote {name!r} names unknown remote(s) {', '.join(missing)}; add "
                f"them first",
                exit_code=2,
            )
    import tomlkit

    file = repo.dot_dir / LOCAL_CONFIG if local else repo.root / PROJECT_CONFIG
    document = load_document(file)
    remotes = document.setdefault("remotes", tomlkit.table(is_super_table=True))
    table = tomlkit.table()
    table["url"] = url
    for key, value in options.items():
        table[key] = value
    remotes[name] = table
    _parse(name, {"url": url, **options}, file)  # validate before writing anything
    if default:
        core = document.setdefault("core", tomlkit.table())
        core["remote"] = name
    write_document(file, document)
    _forget_config(repo)
    return file


def remove_remote(repo: Repo, name: str) -> list[Path]:
    """Delete `[remotes.NAME]` from every config file holding it (and `[core] remote`)."""
    changed = []
    for file in (repo.root / PROJECT_CONFIG, repo.dot_dir / LOCAL_CONFIG):
        if not file.exists():
            continue
        document = load_document(file)
        remotes = document.get("remotes")
        touched = False
        if isinstance(remotes, dict) and name in remotes:
            del remotes[name]
            touched = True
        core = document.get("core")
        if isinstance(core, dict) and core.get("remote") == name:
            del core["remote"]
            touched = True
        if touched:
            write_document(file, document)
            changed.append(file)
    if not changed:
        get_remote_config(repo, name)  # raises UnknownRemoteError listing known names
    _forget_config(repo)
    return changed


def load_document(file: Path) -> tomlkit.TOMLDocument:
    import tomlkit

    read_toml(file)  # a broken file is a ConfigError naming it
    try:
        return tomlkit.parse(file.read_text())
    except FileNotFoundError:
        return tomlkit.document()


def write_document(file: Path, document: tomlkit.TOMLDocument) -> None:
    import tomlkit

    write_atomic(file, tomlkit.dumps(document).encode())


def _forget_config(repo: Repo) -> None:
    repo.__dict__.pop("config", None)  # Repo.config is a cached_property
