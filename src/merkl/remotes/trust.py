"""`[trust] keys` in the committed `merkl.toml`: whose signed output records are accepted.

```toml
[trust]
keys = [
    "alice:ed25519:9Sk0…",
    "ci:ed25519:Qm3x…",
]
```

Only the committed file counts (not `.merkl/config.toml`), so trust is reviewed in git like
any code change. An empty or absent list accepts every record, as before signing existed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from merkl.errors import ConfigError, UsageError
from merkl.remotes.base import Remote
from merkl.remotes.config import load_document, write_document
from merkl.remotes.records import Record, is_safe_serializer
from merkl.remotes.signing import (
    MAX_MANIFEST_BYTES,
    PublicKey,
    TrustedKeys,
    fingerprint,
    manifest_fingerprints,
    parse_public_key,
)
from merkl.repo import PROJECT_CONFIG, Repo, read_toml


@dataclass
class RecordPolicy:
    """Which records fetched from a remote may enter the local index."""

    keys: TrustedKeys
    trust_pickle: bool  # `--trust-pickle` or `trust_pickle = true` for the remote
    # Batch manifests seen so far: oid -> the fingerprints it lists (None: missing or invalid).
    manifests: dict[str, frozenset[bytes] | None] = field(default_factory=dict)

    def signed(self, records: Iterable[Record], remote: Remote, tmp_dir: Path) -> list[Record]:
        """The records signed by a trusted key: their batch manifest (fetched from `remote`
        and re-hashed) lists them and its signature verifies. All of them when no key is
        trusted."""
        records = list(records)
        if not self.keys:
            return records
        candidates = [r for r in records if r.key in self.keys and r.sig and r.batch]
        wanted = {r.batch for r in candidates if r.batch and r.batch not in self.manifests}
        if wanted:
            fetched = remote.fetch_verified(wanted, tmp_dir, MAX_MANIFEST_BYTES)
            for oid in wanted:
                data = fetched.get(oid)
                self.manifests[oid] = None if data is None else manifest_fingerprints(data)
        return [r for r in candidates if self._is_vouched_for(r)]

    def _is_vouched_for(self, record: Record) -> bool:
        key, sig, batch = record.key or "", record.sig or "", record.batch or ""
        listed = self.manifests.get(batch)
        return (
            listed is not None
            and fingerprint(record.entry) in listed
            and self.keys.signed_batch(key, batch, sig)
        )

    def is_loadable(self, record: Record) -> bool:
        """Its serializer cannot run code when loading, or the user trusts the remote."""
        return self.trust_pickle or is_safe_serializer(record.entry.serializer)


def record_policy(repo: Repo, remote: Remote, trust_pickle: bool = False) -> RecordPolicy:
    """The policy for records from `remote`.

    Raises:
        ConfigError: `[trust] keys` in merkl.toml is invalid.
    """
    pickle = trust_pickle or bool(remote.options.get("trust_pickle", False))
    return RecordPolicy(trusted_keys(repo), pickle)


def trusted_keys(repo: Repo) -> TrustedKeys:
    """The keys `merkl.toml` trusts.

    Raises:
        ConfigError: `[trust] keys` is not a list of public keys.
    """
    file = repo.root / PROJECT_CONFIG
    table = read_toml(file).get("trust", {})
    raw = table.get("keys", []) if isinstance(table, dict) else None
    if not isinstance(raw, list) or not all(isinstance(k, str) for k in raw):
        raise ConfigError(
            f"{file}: [trust] keys must be a list of strings like 'alice:ed25519:<base64>'",
            key="trust.keys",
        )
    return TrustedKeys([parse_public_key(text, str(file)) for text in raw])


def add_trusted_key(repo: Repo, key: PublicKey) -> tuple[Path, bool]:
    """Add `key` to `[trust] keys` (replacing an entry with the same key or name); returns
    the file and whether it changed."""
    entries = trusted_keys(repo).keys
    kept = [k for k in entries if k.raw != key.raw and (key.name is None or k.name != key.name)]
    changed = [*kept, key] != entries
    if changed:
        _write_keys(repo, [*kept, key])
    return repo.root / PROJECT_CONFIG, changed


def remove_trusted_key(repo: Repo, name_or_key: str) -> PublicKey:
    """Remove the entry named `name_or_key` (or with that public key); returns it.

    Raises:
        UsageError: no entry matches (the message lists the names there are).
    """
    entries = trusted_keys(repo).keys
    wanted = name_or_key.strip()
    matches = [k for k in entries if wanted in (k.name, k.text, k.entry)]
    if not matches:
        known = ", ".join(k.name or k.text for k in entries) or "none"
        raise UsageError(
            f"no trusted key {wanted!r} in {PROJECT_CONFIG}; trusted: {known}", exit_code=2
        )
    _write_keys(repo, [k for k in entries if k not in matches])
    return matches[0]


def _write_keys(repo: Repo, keys: list[PublicKey]) -> None:
    import tomlkit

    file = repo.root / PROJECT_CONFIG
    document = load_document(file)
    trust = document.setdefault("trust", tomlkit.table())
    array = tomlkit.array()
    array.extend(key.entry for key in keys)
    array.multiline(True)
    trust["keys"] = array
    write_document(file, document)
    repo.__dict__.pop("config", None)  # Repo.config is a cached_property
