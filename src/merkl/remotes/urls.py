"""Remote URLs: `${VAR}` expansion from the environment, and masking of secrets.

Credentials never live in `merkl.toml`: a URL there may say `redis://:${REDIS_PASSWORD}@host`,
and the password is read from the environment when the remote is opened. Every message that
shows a URL shows it through `mask_url`, and every message built from a third-party error goes
through `scrub`, so a password never reaches a terminal or a log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, unquote_plus, urlsplit

from merkl.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_QUERY_KEYS = ("password", "secret", "token", "key", "credential")
MASK = "***"


def expand_vars(text: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace each `${VAR}` in `text` by its environment value; a missing one is an error."""
    env = os.environ if environ is None else environ
    missing = [name for name in _VAR.findall(text) if name not in env]
    if missing:
        names = ", ".join(dict.fromkeys(missing))
        raise ConfigError(
            f"{where}: environment variable(s) {names} not set; export them before using the "
            f"remote (credentials are read from the environment, never from merkl.toml)",
            key=where,
        )
    return _VAR.sub(lambda m: env[m.group(1)], text)


def has_literal_password(url: str) -> bool:
    """True when `url` carries a password that is not a `${VAR}` reference."""
    password = _password(url)
    return bool(password) and _VAR.fullmatch(password or "") is None


def url_secrets(url: str) -> set[str]:
    """The secret parts of an expanded URL: its password and secret-looking query values, each
    as written and percent-decoded (a library may print either form)."""
    secrets = set()
    password = _password(url)
    if password and not _VAR.fullmatch(password):  # `${VAR}` itself is no secret
        secrets |= {password, unquote(password)}
    try:
        query = urlsplit(url).query
    except ValueError:
        return secrets
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if value and any(word in unquote_plus(key).lower() for word in _SECRET_QUERY_KEYS):
            secrets |= {value, unquote_plus(value), unquote(value)}
    return secrets


def mask_url(url: str) -> str:
    """`url` with its password and secret query values replaced by `***`."""
    return scrub(url, url_secrets(url))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by `***` (longest first)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _password(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    netloc = parts.netloc
    if "@" not in netloc:
        return None
    userinfo = netloc.rpartition("@")[0]
    if ":" not in userinfo:
        return None
    return userinfo.partition(":")[2] or None


def scheme_of(url: str) -> str:
    """The registry key of a URL: `s3`, `redis`, `postgresql`…; a plain path is `file`."""
    if "://" not in url:
        return "tiered" if url.startswith("tiered:") else "file"
    scheme = url.split("://", 1)[0].lower()
    return scheme.split("+", 1)[0]  # `mysql+pymysql` → `mysql`
