"""Merlin responses decoded with Go encoding/json semantics."""

from __future__ import annotations

import pytest

from merkl.catalog.sources.merlin.decode import (
    DecodeError,
    decode_models,
    decode_projects,
    decode_version,
)


def test_unknown_fields_are_ignored_and_missing_ones_are_zero():
    (project,) = decode_projects([{"id": 4, "surprise": {"deep": [1, 2]}}])
    assert project == {
        "id": 4,
        "name": "",
        "mlflow_tracking_url": "",
        "administrators": [],
        "readers": [],
        "team": "",
        "stream": "",
        "labels": [],
        "created_at": "",
        "updated_at": "",
    }


def test_field_names_match_case_insensitively_like_go():
    (project,) = decode_projects([{"ID": 9, "Name": "upper", "TEAM": "t"}])
    assert (project["id"], project["name"], project["team"]) == (9, "upper", "t")


def test_nulls_leave_zero_values_and_a_null_pointer_struct_is_none():
    (model,) = decode_models(
        [
            {
                "id": None,
                "name": None,
                "endpoints": [
                    {
                        "id": 1,
                        "rule": {"destinations": [{"version_endpoint": None, "weight": None}]},
                        "created_at": None,
                    }
                ],
            }
        ]
    )
    endpoint = model["endpoints"][0]
    assert model["id"] == 0
    assert model["name"] == ""
    assert endpoint["created_at"] == "0001-01-01T00:00:00Z"
    assert endpoint["rule"]["destinations"] == [
        {"version_endpoint_id": "", "version_endpoint": None, "weight": 0}
    ]


def test_a_null_rule_and_transformer_decode_to_empty_structs():
    (model,) = decode_models([{"endpoints": [{"rule": None}]}])
    assert model["endpoints"][0]["rule"] == {"destinations": []}
    version = decode_version({"endpoints": [{"transformer": None}]})
    assert version["endpoints"][0]["transformer"]["enabled"] is False


def test_a_null_body_is_an_empty_list_or_a_zero_struct():
    assert decode_projects(None) == []
    assert decode_version(None)["id"] == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([{"id": 2**63}], "cannot unmarshal number 9223372036854775808 into Go struct field"),
        ([{"id": True}], "cannot unmarshal bool into Go struct field Project.id of type int64"),
        (
            [{"administrators": "ann"}],
            "cannot unmarshal string into Go struct field Project.administrators of type []string",
        ),
        ([{"labels": {"a": "b"}}], "cannot unmarshal object into Go struct field Project.labels"),
        (
            [{"team": 5}],
            "cannot unmarshal number 5 into Go struct field Project.team of type string",
        ),
        ([["nested"]], "cannot unmarshal array into Go struct field"),
        ("text", "cannot unmarshal string into Go value of type []merlin.Project"),
    ],
)
def test_type_mismatches_fail_the_response(body, message):
    with pytest.raises(DecodeError, match="json: ") as caught:
        decode_projects(body)
    assert message in str(caught.value)


def test_version_labels_must_be_strings_and_times_valid():
    assert decode_version({"labels": {"a": "1", "b": None}})["labels"] == {"a": "1", "b": ""}
    with pytest.raises(DecodeError, match=r"ModelVersion\.labels"):
        decode_version({"labels": {"a": 1}})
    with pytest.raises(DecodeError, match=r"ModelVersion\.created_at: parsing time"):
        decode_version({"created_at": "2022-10-28"})
    with pytest.raises(DecodeError, match=r"Go value of type merlin\.ModelVersion"):
        decode_version([])


def test_ignored_nested_structs_are_still_type_checked():
    """The version's own endpoints are never read, but Go decodes them: a bad time fails."""
    with pytest.raises(DecodeError, match=r"VersionEndpoint\.updated_at"):
        decode_version({"endpoints": [{"updated_at": "soon"}]})
