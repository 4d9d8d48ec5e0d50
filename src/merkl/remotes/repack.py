"""Planning what `gc --remote` does to packed storage: drop dead keys, repack, delete packs.

Storage-neutral (`merkl.remotes.s3` does the I/O). Given every index, the listed packs and the
keys to delete, the plan says
- which live keys to copy out of packs whose dead share exceeds `max_unused` (restic's
  `--max-unused`, per pack): they go into new packs under a new index,
- how each old index is rewritten: it keeps only the keys it is the newest index for that are
  neither deleted nor moved (older, shadowed entries of a key pushed twice go too),
- which packs no index names afterwards (deleted whole), and which packs no index ever named
  (left by a killed push or gc) are old enough to delete. A pack is named by the segments of
  the keys an index lists.

The executor writes in this order, so a process killed at any step leaves every live key
readable: new packs, then their index (a key is then listed twice, the new index wins), then
each replacement index before its old one is deleted (both, never neither), then the packs
nothing names any more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import orjson

from merkl.errors import RemoteError
from merkl.hashing import hash_bytes
from merkl.remotes.packs import INDEX, INDEX_FORMAT, Location, new_stamp

#: Default share of a pack's bytes that may be dead before gc repacks it (restic: 5 %).
DEFAULT_MAX_UNUSED = 0.2


@dataclass(frozen=True)
class PackInfo:
    """A pack as the bucket listing shows it."""

    size: int
    modified: float  # seconds since the epoch


@dataclass
class Compaction:
    """What a gc does to packed storage (see the module docstring)."""

    moved: dict[str, Location] = field(default_factory=dict)  # live keys to copy
    rewrite: dict[str, tuple[str, bytes] | None] = field(default_factory=dict)  # old → new
    repack: list[str] = field(default_factory=list)  # pack ids copied out of
    delete_packs: list[str] = field(default_factory=list)  # pack ids deleted whole
    sizes: dict[str, int] = field(default_factory=dict)  # bytes of each deleted packed key
    freed: int = 0  # bytes of the packs deleted
    orphans: int = 0  # packs deleted that no index named

    @property
    def copied(self) -> int:
        return sum(location.size for location in self.moved.values())


def parse_max_unused(value: object, where: str) -> float:
    """The `max_unused` option: a fraction (0.2) or a percentage ("20%").

    Raises:
        RemoteError: not a share from 0 to 1.
    """
    share: float | None = None
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            share = float(value.strip()[:-1]) / 100
        except ValueError:
            share = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        share = float(value)
    if share is None or not 0 <= share <= 1:
        raise RemoteError(
            f"{where}: option max_unused must be a share of a pack's bytes from 0 to 1 "
            f'(0.2) or a percentage ("20%"), got {value!r}'
        )
    return share


def plan_compaction(
    indexes: Mapping[str, Mapping[str, Location] | None],
    packs: Mapping[str, PackInfo],
    doomed: AbstractSet[str],
    *,
    max_unused: float | None,
    orphan_before: float,
) -> Compaction:
    """The plan for deleting `doomed` packed keys, given every index's locations ({name:
    locations}, None for an unreadable one) and the listed packs ({id: info}). `max_unused`
    None: repack nothing. Packs no index names are deleted when modified before
    `orphan_before` (a push holding its lock may be writing newer ones), and only when every
    index could be read."""
    parsed = {name: found for name, found in indexes.items() if found is not None}
    complete = len(parsed) == len(indexes)
    newest: dict[str, str] = {}  # key -> name of the newest index listing it
    for name in sorted(parsed):
        for key in parsed[name]:
            newest[key] = name
    plan = Compaction()
    live: dict[str, Location] = {}
    for key, name in newest.items():
        location = parsed[name][key]
        if key in doomed:
            plan.sizes[key] = location.size
        else:
            live[key] = location
    live_bytes = _bytes_per_pack(live.values())
    if max_unused is not None:
        plan.repack = sorted(
            pack
            for pack, used in live_bytes.items()
            if pack in packs and packs[pack].size and 1 - used / packs[pack].size > max_unused
        )
    repacked = set(plan.repack)
    plan.moved = {
        key: location
        for key, location in live.items()
        if any(segment.pack in repacked for segment in location.segments)
    }
    named_before: set[str] = set()
    named_after: set[str] = set()
    for name, locations in parsed.items():
        kept = {
            key: location
            for key, location in locations.items()
            if newest[key] == name and key in live and key not in plan.moved
        }
        before = {s.pack for location in locations.values() for s in location.segments}
        named_before |= before
        if len(kept) == len(locations):
            named_after |= before
            continue
        named_after.update(s.pack for location in kept.values() for s in location.segments)
        plan.rewrite[name] = dump_locations(kept) if kept else None
    orphans = {
        pack
        for pack, info in packs.items()
        if complete and pack not in named_before and info.modified < orphan_before
    }
    plan.orphans = len(orphans)
    plan.delete_packs = sorted((named_before - named_after) | orphans)
    plan.freed = sum(packs[p].size for p in plan.delete_packs if p in packs)
    return plan


def dump_locations(locations: Mapping[str, Location]) -> tuple[str, bytes]:
    """(name, bytes) of a new index listing `locations` (their packs renumbered)."""
    numbers: dict[str, int] = {}
    keys: dict[str, list[list[int]]] = {}
    for key, location in sorted(locations.items()):
        keys[key] = [
            [numbers.setdefault(s.pack, len(numbers)), s.offset, s.length]
            for s in location.segments
        ]
    data = orjson.dumps({"format": INDEX_FORMAT, "packs": list(numbers), "keys": keys})
    return f"{INDEX}{new_stamp():016x}-{hash_bytes(data)}.json", data


def _bytes_per_pack(locations: Iterable[Location]) -> dict[str, int]:
    used: dict[str, int] = {}
    for location in locations:
        for segment in location.segments:
            used[segment.pack] = used.get(segment.pack, 0) + segment.length
    return used
