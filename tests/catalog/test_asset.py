"""The record builders emit protojson's shape for any source."""

from __future__ import annotations

import json

import pytest

from merkl.catalog.asset import (
    dump_asset,
    make_asset,
    make_data,
    make_owner,
    make_resource,
    make_struct,
    make_urn,
)


def test_a_minimal_asset_prints_every_field_in_proto_order():
    asset = make_asset(
        urn=make_urn("merkl", "dev", "table", "a.b"), name="b", service="merkl", asset_type="table"
    )
    assert dump_asset(asset) == (
        b'{"urn":"urn:merkl:dev:table:a.b","name":"b","service":"merkl","type":"table","url":"",'
        b'"description":"","data":null,"owners":[],"lineage":{"upstreams":[],"downstreams":[]},'
        b'"labels":{},"event":null,"create_time":null,"update_time":null}'
    )


def test_maps_and_structs_are_sorted_and_numbers_print_like_go_doubles():
    asset = make_asset(
        urn="u",
        name="n",
        service="s",
        asset_type="t",
        labels={"b": "2", "a": "1"},
        data=make_data(
            "Table",
            {
                "attributes": make_struct(
                    {
                        "z": 1.0,
                        "y": {"d": 2, "c": [3.5, 4.0]},
                        "x": 2**60 + 1,
                        "w": True,
                        "v": None,
                    }
                )
            },
        ),
        owners=[make_owner("ann@example.com", email="ann@example.com")],
        upstreams=[make_resource("urn:x", service="x", resource_type="topic")],
    )
    line = json.loads(dump_asset(asset))
    assert list(line["labels"]) == ["a", "b"]
    attributes = line["data"]["attributes"]
    assert list(attributes) == ["v", "w", "x", "y", "z"]
    assert attributes["z"] == 1
    assert isinstance(attributes["z"], int)
    assert attributes["x"] == 2**60  # rounded to the nearest double, as Struct holds doubles
    assert attributes["y"] == {"c": [3.5, 4], "d": 2}
    assert line["data"]["@type"] == "type.googleapis.com/raystack.assets.v1beta2.Table"
    assert line["owners"] == [
        {"urn": "ann@example.com", "name": "", "role": "", "email": "ann@example.com"}
    ]
    assert line["lineage"]["upstreams"] == [
        {"urn": "urn:x", "name": "", "service": "x", "type": "topic"}
    ]


def test_struct_rejects_values_json_cannot_hold():
    with pytest.raises(TypeError, match="JSON-like"):
        make_struct({"when": object()})
