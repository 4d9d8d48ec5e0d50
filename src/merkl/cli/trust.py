"""Commands for signed outputs: `merkl key generate|show`, `merkl trust add|list|remove`."""

from __future__ import annotations

from typing import Annotated

from clize import Clize

from merkl.repo import Repo


def key_generate() -> str:
    """Create your ed25519 signing key; `merkl push` signs the output records it writes.

    The private key goes to $MERKL_SIGNING_KEY if set, else to merkl/signing-key.pem in your
    configuration folder (mode 0600), never into the repository. An existing key is kept.
    """
    from merkl.ops.trust import key_generate as generate

    return generate()


def key_show(*, name: Annotated[str | None, Clize[str]] = None) -> str:
    """Print your public key as one line, to hand to `merkl trust add`.

    :param name: prefix the key with this name (NAME:ed25519:…)
    """
    from merkl.ops.trust import key_show as show

    return show(name)


def trust_add(key: str, *, name: Annotated[str | None, Clize[str]] = None) -> str:
    """Trust output records signed by KEY (written to [trust] keys in merkl.toml).

    Once any key is trusted, pull, run --pull and read-through accept only output records
    signed by a trusted key; the others are skipped and their outputs computed locally.
    Commit merkl.toml: trust is reviewed like code.

    :param key: a public key, ed25519:<base64> (or NAME:ed25519:<base64>)
    :param name: a name for the key, shown by `merkl trust list`
    """
    from merkl.ops.trust import trust_add as add

    return add(Repo.find(), key, name)


def trust_list() -> str:
    """List the trusted public keys."""
    from merkl.ops.trust import trust_list as rows

    lines = rows(Repo.find())
    return "\n".join(lines) if lines else "no trusted keys: every output record is accepted"


def trust_remove(name_or_key: str) -> str:
    """Stop trusting a key.

    :param name_or_key: the key's name, or the key itself
    """
    from merkl.ops.trust import trust_remove as remove

    return remove(Repo.find(), name_or_key)
