"""Decode Merlin's JSON the way Meteor's Go client does, so the same responses fail.

Go's `encoding/json` into typed structs: unknown fields are ignored, field names match exactly
or else case-insensitively, `null` leaves the zero value (nil slices and maps, absent pointer
structs), and a value of the wrong JSON type (a string for an int, `1.5` for an int64, a number
in a string map) fails the whole response. Timestamps are strict RFC 3339 and are normalised
here to Meteor's output form (`merkl.catalog.timestamp`). Decoded structs are plain dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from merkl.catalog.timestamp import ZERO_TIME, TimestampError, normalize_timestamp

Decoder = Callable[[Any, str], Any]
"""`decode(json_value, where)`; `where` names the Go field for error messages."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class DecodeError(ValueError):
    """A response that Meteor's Go client could not decode (caught by the client)."""


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _mismatch(value: Any, where: str, go_type: str) -> DecodeError:
    return DecodeError(
        f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} of type "
        f"{go_type}"
    )


def int64(value: Any, where: str) -> int:
    if value is None:
        return 0
    if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
        return value
    raise _mismatch(value, where, "int64")


def string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise _mismatch(value, where, "string")


def boolean(value: Any, where: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise _mismatch(value, where, "bool")


def timestamp(value: Any, where: str) -> str:
    if value is None:
        return ZERO_TIME
    if not isinstance(value, str):
        raise _mismatch(value, where, "time.Time")
    try:
        return normalize_timestamp(value)
    except TimestampError as exc:
        raise DecodeError(f"{where}: {exc}") from None


def string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _mismatch(value, where, "map[string]string")
    return {key: string(item, where) for key, item in value.items()}


def list_of(item: Decoder, go_type: str) -> Decoder:
    def decode(value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise _mismatch(value, where, f"[]{go_type}")
        return [item(element, where) for element in value]

    return decode


def struct(go_name: str, fields: dict[str, Decoder], *, pointer: bool = False) -> Decoder:
    """A Go struct `go_name` with JSON fields `fields`; a pointer struct decodes `null` to None."""
    folded = {key.lower(): key for key in fields}
    wheres = {key: f"{go_name}.{key}" for key in fields}

    def decode(value: Any, where: str) -> dict[str, Any] | None:
        if value is None:
            return None if pointer else {key: dec(None, "") for key, dec in fields.items()}
        if not isinstance(value, dict):
            raise _mismatch(value, where, go_name)
        out: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = raw_key if raw_key in fields else folded.get(raw_key.lower())
            if key is not None:
                out[key] = fields[key](item, wheres[key])
        for key, dec in fields.items():
            if key not in out:
                out[key] = dec(None, "")
        return out

    return decode


def top_level(decoder: Decoder, go_type: str) -> Callable[[Any], Any]:
    """Decode a whole response body (already parsed JSON) as Go type `go_type`."""

    def decode(value: Any) -> Any:
        if value is not None and not isinstance(value, list | dict):
            raise DecodeError(
                f"json: cannot unmarshal {_json_kind(value)} into Go value of type {go_type}"
            )
        if go_type.startswith("[]") and isinstance(value, dict):
            raise DecodeError(f"json: cannot unmarshal object into Go value of type {go_type}")
        if not go_type.startswith("[]") and isinstance(value, list):
            raise DecodeError(f"json: cannot unmarshal array into Go value of type {go_type}")
        return decoder(value, go_type)

    return decode


# The structs of Meteor's Merlin client: every field it decodes, read or not, because a wrong
# type in any of them fails the response.
_env_var = struct("EnvVar", {"name": string, "value": string})
_env_vars = list_of(_env_var, "merlin.EnvVar")
_transformer = struct(
    "Transformer",
    {
        "enabled": boolean,
        "transformer_type": string,
        "image": string,
        "command": string,
        "args": string,
        "env_vars": _env_vars,
        "created_at": timestamp,
        "updated_at": timestamp,
    },
)
_version_endpoint_fields: dict[str, Decoder] = {
    "id": string,
    "version_id": int64,
    "status": string,
    "url": string,
    "service_name": string,
    "environment_name": string,
    "monitoring_url": string,
    "message": string,
    "env_vars": _env_vars,
    "transformer": _transformer,
    "deployment_mode": string,
    "created_at": timestamp,
    "updated_at": timestamp,
}
_version_endpoint_ptr = struct("VersionEndpoint", _version_endpoint_fields, pointer=True)
_version_endpoint = struct("VersionEndpoint", _version_endpoint_fields)
_destination = struct(
    "ModelEndpointRuleDestination",
    {"version_endpoint_id": string, "version_endpoint": _version_endpoint_ptr, "weight": int64},
)
_rule = struct(
    "ModelEndpointRule",
    {"destinations": list_of(_destination, "merlin.ModelEndpointRuleDestination")},
)
_model_endpoint = struct(
    "ModelEndpoint",
    {
        "id": int64,
        "status": string,
        "url": string,
        "rule": _rule,
        "environment_name": string,
        "created_at": timestamp,
        "updated_at": timestamp,
    },
)
_model = struct(
    "Model",
    {
        "id": int64,
        "project_id": int64,
        "mlflow_experiment_id": int64,
        "name": string,
        "type": string,
        "mlflow_url": string,
        "endpoints": list_of(_model_endpoint, "merlin.ModelEndpoint"),
        "created_at": timestamp,
        "updated_at": timestamp,
    },
)
_label = struct("Label", {"key": string, "value": string})
_project = struct(
    "Project",
    {
        "id": int64,
        "name": string,
        "mlflow_tracking_url": string,
        "administrators": list_of(string, "string"),
        "readers": list_of(string, "string"),
        "team": string,
        "stream": string,
        "labels": list_of(_label, "merlin.Label"),
        # Plain strings in the Go client: not parsed, so never a decode failure.
        "created_at": string,
        "updated_at": string,
    },
)
_version = struct(
    "ModelVersion",
    {
        "id": int64,
        "model_id": int64,
        "mlflow_run_id": string,
        "mlflow_url": string,
        "endpoints": list_of(_version_endpoint, "merlin.VersionEndpoint"),
        "labels": string_map,
        "created_at": timestamp,
        "updated_at": timestamp,
    },
)
_feature_table = struct("FeatureTableMetadata", {"name": string, "project": string})

decode_projects = top_level(list_of(_project, "merlin.Project"), "[]merlin.Project")
decode_models = top_level(list_of(_model, "merlin.Model"), "[]merlin.Model")
decode_version = top_level(_version, "merlin.ModelVersion")
decode_feature_tables = top_level(
    list_of(_feature_table, "FeatureTableMetadata"), "[]FeatureTableMetadata"
)
