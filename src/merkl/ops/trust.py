"""`merkl key generate|show` and `merkl trust add|list|remove`: who may vouch for outputs."""

from __future__ import annotations

import getpass

from merkl.errors import UsageError
from merkl.remotes.signing import (
    KEY_ENV,
    PublicKey,
    generate_signer,
    is_key_name,
    load_signer,
    parse_public_key,
    signing_key_path,
)
from merkl.remotes.trust import add_trusted_key, remove_trusted_key, trusted_keys
from merkl.repo import Repo


def key_generate() -> str:
    """Create the user's signing key; returns where it is and its public key."""
    signer = generate_signer()
    return (
        f"signing key written to {signer.path} (keep it private)\n"
        f"public key: {signer.public.text}\n"
        f"colleagues trust it with: merkl trust add {signer.public.text} --name NAME"
    )


def key_show(name: str | None = None) -> str:
    """The user's public key as one line (`NAME:ed25519:…` with a name).

    Raises:
        UsageError: the user has no signing key yet.
    """
    signer = load_signer()
    if signer is None:
        raise UsageError(
            f"no signing key at {signing_key_path()}; create one with `merkl key generate` "
            f"(or set ${KEY_ENV} to its file)"
        )
    if name is None:
        return signer.public.text
    return PublicKey(signer.public.raw, _checked_name(name)).entry


def trust_add(repo: Repo, key: str, name: str | None = None) -> str:
    parsed = parse_public_key(key, "KEY")
    if name is not None:
        parsed = PublicKey(parsed.raw, _checked_name(name))
    file, changed = add_trusted_key(repo, parsed)
    shown = parsed.name or parsed.text
    if not changed:
        return f"{shown} is already trusted in {repo.relpath(file)}"
    return f"trusted {shown} in {repo.relpath(file)} (commit it so colleagues trust it too)"


def trust_list(repo: Repo) -> list[str]:
    return [key.entry for key in trusted_keys(repo).keys]


def trust_remove(repo: Repo, name_or_key: str) -> str:
    removed = remove_trusted_key(repo, name_or_key)
    return f"no longer trusting {removed.name or removed.text}"


def trust_myself(repo: Repo) -> str:
    """Trust the user's own key in `repo` (`merkl init --sign`), creating the key if needed."""
    signer = load_signer()
    created = signer is None
    if signer is None:
        signer = generate_signer()
    user = getpass.getuser()
    name = user if is_key_name(user) else None
    file, _changed = add_trusted_key(repo, PublicKey(signer.public.raw, name))
    made = f"created your signing key {signer.path}; " if created else ""
    return f"{made}trusted your key {signer.public.text} in {repo.relpath(file)}"


def _checked_name(name: str) -> str:
    return parse_public_key(f"{name}:{PublicKey(bytes(32)).text}", "--name").name or ""
