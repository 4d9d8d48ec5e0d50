"""Ed25519 signatures of output records, checked against the keys a repository trusts.

A record's Merkle hash covers a task's code and inputs, not its value, so anyone who can write
to a remote can store any value under any hash. Like Nix's signed narinfo files and its
`trusted-public-keys`, the pusher signs each record with a private key of their own, and
readers accept only records signed by a key listed in the committed `merkl.toml`
(`[trust] keys`). A signature proves who computed a value, not that it is right.

What is signed is a batch: a push writes, for up to `BATCH_RECORDS` records at a time, a
manifest object listing each record's fingerprint (the output hash the record is stored under,
the object id, the size and the serializer), and signs the manifest's hash once. Each record
names its manifest and carries that signature. A reader fetches the manifest like any object
(re-hashed on arrival), checks the signature once per batch, and accepts a record only if its
fingerprint is listed. A signature copied onto another output's record, or a record edited after
signing, does not verify. One Ed25519 check per batch instead of per record keeps a pull of
thousands of outputs within a few percent of an unsigned one (`benchmarks/bench_remotes.py`).

Keys are one line of text: `ed25519:<base64 of the 32-byte public key>`, optionally prefixed
with a name (`alice:ed25519:…`) that only helps people tell them apart. The private key is a
PKCS#8 PEM file outside the repository: `$MERKL_SIGNING_KEY`, else `merkl/signing-key.pem` in
the user's configuration folder, created with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merkl.cache.index import OutputEntry
from merkl.errors import ConfigError, UsageError
from merkl.hashing import hash_bytes
from merkl.remotes.records import Record

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_ENV = "MERKL_SIGNING_KEY"
ALGORITHM = "ed25519"
BATCH_RECORDS = 256  # records per signed manifest (a manifest is about 50 KB)
MAX_MANIFEST_BYTES = 1 << 20  # a manifest larger than this was not written by merkl
_MANIFEST_HEADER = b"merkl-signed-records:1\n"
_KEY_BYTES = 32
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")


@dataclass(frozen=True)
class PublicKey:
    """A public key, optionally named (the name plays no part in checking signatures)."""

    raw: bytes
    name: str | None = None

    @property
    def text(self) -> str:
        """`ed25519:<base64>`: what a record carries and what trust is matched on."""
        return f"{ALGORITHM}:{base64.b64encode(self.raw).decode()}"

    @property
    def entry(self) -> str:
        """How the key is written in `[trust] keys`: `name:ed25519:<base64>` or the text."""
        return f"{self.name}:{self.text}" if self.name else self.text


def parse_public_key(text: str, where: str) -> PublicKey:
    """`ed25519:<base64>` or `NAME:ed25519:<base64>`; `where` names the source in errors.

    Raises:
        UsageError: the text is not such a key (ConfigError when `where` is a config file).
    """
    cleaned = text.strip()
    name, marker, encoded = cleaned.rpartition(f"{ALGORITHM}:")
    name = name.removesuffix(":") if marker else ""
    raw = b""
    if marker:
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != _KEY_BYTES or (name and not is_key_name(name)):
        message = (
            f"{where}: {cleaned[:80]!r} is not a public key; expected 'ed25519:<base64>' "
            f"(optionally 'NAME:ed25519:<base64>') as printed by `merkl key show`"
        )
        if where.endswith(".toml"):
            raise ConfigError(message, key="trust.keys")
        raise UsageError(message, exit_code=2)
    return PublicKey(raw, name or None)


def is_key_name(name: str) -> bool:
    """True for a name that may prefix a key: letters, digits and `._@-`."""
    return bool(_NAME.match(name))


def signing_key_path() -> Path:
    """Where the user's private key lives: `$MERKL_SIGNING_KEY`, else the config folder."""
    configured = os.environ.get(KEY_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "merkl" / "signing-key.pem"


class Signer:
    """The user's private key: signs output records."""

    def __init__(self, key: Ed25519PrivateKey, path: Path) -> None:
        self._key = key
        self.path = path
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self.public = PublicKey(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign_batch(self, manifest_oid: str) -> str:
        """The base64 signature of a batch manifest's hash."""
        return base64.b64encode(self._key.sign(_batch_message(manifest_oid))).decode()


def load_signer(path: Path | None = None) -> Signer | None:
    """The user's signing key, or None when there is none yet.

    Raises:
        ConfigError: the file exists but is not an unencrypted ed25519 private key.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    path = path or signing_key_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"signing key {path}: cannot read it ({exc.strerror})") from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"signing key {path}: not an unencrypted ed25519 private key in PEM form; move it "
            f"away and run `merkl key generate` (or point ${KEY_ENV} at the right file)"
        )
    return Signer(key, path)


def generate_signer(path: Path | None = None) -> Signer:
    """Create a new private key at `path` (mode 0600); an existing key is never replaced.

    Raises:
        UsageError: a key already exists there.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    path = path or signing_key_path()
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(
            f"a signing key already exists at {path}; `merkl key show` prints its public key "
            f"(set ${KEY_ENV} to use another file)"
        ) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return Signer(key, path)


def fingerprint(entry: OutputEntry) -> bytes:
    """What a signature vouches for about one record (the hash it is stored under included)."""
    return f"{entry.out_hash};blake3:{entry.oid};{entry.size};{entry.serializer}".encode()


def batch_manifest(entries: list[OutputEntry]) -> bytes:
    """The manifest object of a batch: a header, then one fingerprint per line, sorted."""
    return _MANIFEST_HEADER + b"\n".join(sorted(fingerprint(e) for e in entries))


def manifest_fingerprints(data: bytes) -> frozenset[bytes] | None:
    """The fingerprints a manifest lists; None when the bytes are not a manifest."""
    if len(data) > MAX_MANIFEST_BYTES or not data.startswith(_MANIFEST_HEADER):
        return None
    return frozenset(data[len(_MANIFEST_HEADER) :].split(b"\n"))


def sign_records(
    entries: list[OutputEntry], signer: Signer
) -> tuple[list[Record], dict[str, bytes]]:
    """Signed records for `entries`, and the manifest objects ({oid: bytes}) to store first."""
    ordered = sorted(entries, key=lambda e: e.out_hash)
    records: list[Record] = []
    manifests: dict[str, bytes] = {}
    key = signer.public.text
    for start in range(0, len(ordered), BATCH_RECORDS):
        batch = ordered[start : start + BATCH_RECORDS]
        data = batch_manifest(batch)
        oid = hash_bytes(data)
        manifests[oid] = data
        signature = signer.sign_batch(oid)
        records += [Record(entry, key, signature, oid) for entry in batch]
    return records, manifests


def as_records(
    items: Iterable[OutputEntry | Record],
    signer: Signer | None,
    manifests: Mapping[str, bytes] | None = None,
) -> tuple[list[Record], dict[str, bytes]]:
    """Records to push for `items`: entries signed with `signer` (unsigned without one),
    records as they are; and every manifest to store first (`manifests` plus new ones)."""
    items = list(items)
    plain = [item for item in items if isinstance(item, OutputEntry)]
    records = [item for item in items if isinstance(item, Record)]
    blobs = dict(manifests or {})
    if signer is not None and plain:
        signed, made = sign_records(plain, signer)
        records += signed
        blobs.update(made)
    else:
        records += [Record(entry) for entry in plain]
    return records, blobs


def _batch_message(manifest_oid: str) -> bytes:
    return f"merkl-record-batch:1;blake3:{manifest_oid}".encode()


class TrustedKeys:
    """The public keys a repository trusts (`[trust] keys`); empty trusts every record."""

    def __init__(self, keys: list[PublicKey]) -> None:
        self.keys = keys
        self._raw = {key.text: key.raw for key in keys}
        self._verifiers: dict[str, Any] = {}  # key text -> Ed25519PublicKey, made on first use
        self._checked: dict[tuple[str, str, str], bool] = {}  # (key, manifest, sig) -> valid

    def __bool__(self) -> bool:
        return bool(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def signed_batch(self, key: str, manifest_oid: str, signature: str) -> bool:
        """True when `signature` of the manifest is valid and by a trusted `key` (memoized:
        the records of one batch share it)."""
        if key not in self._raw:
            return False
        memo = (key, manifest_oid, signature)
        valid = self._checked.get(memo)
        if valid is None:
            valid = self._checked[memo] = self._verify(key, manifest_oid, signature)
        return valid

    def _verify(self, key: str, manifest_oid: str, signature: str) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        verifier = self._verifiers.get(key)
        if verifier is None:
            verifier = self._verifiers[key] = Ed25519PublicKey.from_public_bytes(self._raw[key])
        try:
            verifier.verify(
                base64.b64decode(signature, validate=True), _batch_message(manifest_oid)
            )
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True
