"""Pack planning, index encoding and range planning (storage-neutral; no service needed)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from merkl.errors import RemoteError
from merkl.remotes.packs import (
    Location,
    PackCatalog,
    Segment,
    dump_index,
    load_index,
    plan_packs,
    plan_reads,
    read_pack,
)

PACK_A, PACK_B = "a" * 64, "b" * 64


def test_small_blobs_share_packs_and_are_never_split() -> None:
    items = [("k1", b"x" * 40, 40), ("k2", b"y" * 40, 40), ("k3", b"z" * 30, 30)]
    plans = plan_packs(items, 100)
    assert [[p.key for p in pack] for pack in plans] == [["k1", "k2"], ["k3"]]
    assert read_pack(plans[0]) == b"x" * 40 + b"y" * 40


def test_a_big_blob_is_cut_into_packs_of_its_own_and_empty_blobs_take_no_space(
    tmp_path: Path,
) -> None:
    big = tmp_path / "big"
    big.write_bytes(bytes(range(250)))
    plans = plan_packs([("s", b"ab", 2), ("big", big, 250), ("e", b"", 0)], 100)
    assert [[(p.key, p.start, p.length) for p in pack] for pack in plans] == [
        [("big", 0, 100)],
        [("big", 100, 100)],
        [("big", 200, 50)],
        [("s", 0, 2)],
    ]
    assert b"".join(read_pack(p) for p in plans[:3]) == big.read_bytes()


def test_a_file_that_shrank_since_planning_is_not_packed(tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"12345")
    (plan,) = plan_packs([("k", source, 5)], 100)
    source.write_bytes(b"12")
    with pytest.raises(OSError, match="changed while it was being packed"):
        read_pack(plan)


def test_index_round_trip_and_newer_index_wins() -> None:
    plans = plan_packs([("k1", b"abc", 3), ("k2", b"de", 2)], 100)
    first, data = dump_index([PACK_A], plans, empty=["e"])
    found = load_index(data, first, "remote 'x'")
    assert found["k2"] == Location(first, (Segment(PACK_A, 3, 2),))
    assert found["e"].segments == ()
    second, data2 = dump_index([PACK_B], plan_packs([("k2", b"zz", 2)], 100))
    assert first < second  # names sort by time
    catalog = PackCatalog()
    catalog.add(second, load_index(data2, second, "remote 'x'"))
    catalog.add(first, found)  # read later, but older
    location = catalog.find("k2")
    assert location is not None
    assert location.segments == (Segment(PACK_B, 0, 2),)
    assert sorted(catalog.keys("k")) == ["k1", "k2"]


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (b"{", "not JSON"),
        ({"format": 2, "packs": [], "keys": {}}, "expected a format 1 object"),
        ({"format": 1, "packs": ["nothex"], "keys": {}}, "'packs' must be a list"),
        ({"format": 1, "packs": [PACK_A], "keys": []}, "'keys' must be an object"),
        ({"format": 1, "packs": [PACK_A], "keys": {"k": [[1, 0, 1]]}}, "segment"),
        ({"format": 1, "packs": [PACK_A], "keys": {"k": [[0, -1, 1]]}}, "segment"),
        ({"format": 1, "packs": [PACK_A], "keys": {"k": [[0, 0, True]]}}, "segment"),
        ({"format": 1, "packs": [PACK_A], "keys": {"index/x": []}}, "entry for 'index/x'"),
    ],
)
def test_invalid_index_is_one_error_naming_it(document: object, why: str) -> None:
    data = document if isinstance(document, bytes) else orjson.dumps(document)
    with pytest.raises(RemoteError, match=rf"pack index index/n on remote 'x' is invalid \({why}"):
        load_index(data, "index/n", "remote 'x'")


def test_reads_merge_near_segments_of_a_pack_and_split_far_or_overlapping_ones() -> None:
    def at(*segments: Segment) -> Location:
        return Location("index/n", segments)

    wanted = [
        ("k1", Path("d1"), at(Segment(PACK_A, 0, 10))),
        ("k2", Path("d2"), at(Segment(PACK_A, 15, 5))),  # 5-byte gap: same GET
        ("k3", Path("d3"), at(Segment(PACK_A, 1000, 5))),  # far: a GET of its own
        ("k4", Path("d4"), at(Segment(PACK_A, 2, 3))),  # overlaps k1: starts another GET
        ("k5", Path("d5"), at(Segment(PACK_B, 0, 4), Segment(PACK_A, 20, 6))),
        ("e", Path("d6"), at()),
    ]
    reads = plan_reads(wanted, max_gap=100)
    spans = sorted((r.pack[0], r.start, r.end, [w.key for w in r.writes]) for r in reads)
    assert spans == [
        ("a", 0, 10, ["k1"]),
        ("a", 2, 26, ["k4", "k2", "k5"]),
        ("a", 1000, 1005, ["k3"]),
        ("b", 0, 4, ["k5"]),
    ]
    (k5_tail,) = [w for r in reads for w in r.writes if w.key == "k5" and r.pack == PACK_A]
    assert k5_tail.at == 4  # the second segment lands after the first one's 4 bytes
