"""Build Meteor `Asset` records (`raystack.assets.v1beta2`) as protojson-shaped dicts.

A record is a plain dict whose keys follow the proto declaration order and which serialises, with
`dump_asset`, to exactly what Meteor's protojson (`UseProtoNames`, `EmitUnpopulated`) prints:
unset strings are `""`, unset messages `null`, empty lists `[]`, maps and `Struct`s `{}` with
their keys sorted, integral `Struct` numbers without a decimal point. Sources build records only
through these helpers so that every plugin emits the same shape; processors that change a map
or `Struct` re-sort it with `sorted_map` / `make_struct`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

Asset = dict[str, Any]
"""One catalog record: a protojson-shaped `raystack.assets.v1beta2.Asset`."""

TYPE_URL_PREFIX = "type.googleapis.com/raystack.assets.v1beta2."

# Doubles beyond this print in exponent form in Go; integral values below it print as integers.
_MAX_PLAIN_DOUBLE = 1e21


def make_urn(service: str, scope: str, asset_type: str, asset_id: str) -> str:
    """Meteor's URN, `urn:{service}:{scope}:{type}:{id}`."""
    return f"urn:{service}:{scope}:{asset_type}:{asset_id}"


def make_owner(urn: str, *, name: str = "", role: str = "", email: str = "") -> dict[str, str]:
    """An `Owner` message."""
    return {"urn": urn, "name": name, "role": role, "email": email}


def make_resource(urn: str, *, service: str, resource_type: str, name: str = "") -> dict[str, str]:
    """A lineage `Resource` message (an upstream or downstream)."""
    return {"urn": urn, "name": name, "service": service, "type": resource_type}


def make_asset(
    *,
    urn: str,
    name: str,
    service: str,
    asset_type: str,
    url: str = "",
    description: str = "",
    data: Mapping[str, Any] | None = None,
    owners: Iterable[Mapping[str, str]] = (),
    upstreams: Iterable[Mapping[str, str]] = (),
    downstreams: Iterable[Mapping[str, str]] = (),
    labels: Mapping[str, str] | None = None,
    create_time: str | None = None,
    update_time: str | None = None,
) -> Asset:
    """An `Asset` message; `data` is an `Any` payload from `make_data` / `make_model`.

    Timestamps are strings from `merkl.catalog.timestamp`; None prints as `null` (unset).
    """
    return {
        "urn": urn,
        "name": name,
        "service": service,
        "type": asset_type,
        "url": url,
        "description": description,
        "data": None if data is None else dict(data),
        "owners": [dict(owner) for owner in owners],
        "lineage": {
            "upstreams": [dict(r) for r in upstreams],
            "downstreams": [dict(r) for r in downstreams],
        },
        "labels": sorted_map(labels or {}),
        "event": None,
        "create_time": create_time,
        "update_time": update_time,
    }


def make_data(type_name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """An `Any` payload of message `type_name` (e.g. `Model`, `Table`) with its fields in order."""
    return {"@type": TYPE_URL_PREFIX + type_name, **fields}


def make_model(
    *,
    namespace: str,
    flavor: str,
    versions: Iterable[Mapping[str, Any]],
    attributes: Mapping[str, Any],
    create_time: str | None,
    update_time: str | None,
    algorithm: str = "",
    status: str = "",
) -> dict[str, Any]:
    """The `Any` payload of a `Model` asset."""
    return make_data(
        "Model",
        {
            "namespace": namespace,
            "flavor": flavor,
            "algorithm": algorithm,
            "status": status,
            "versions": [dict(v) for v in versions],
            "attributes": make_struct(attributes),
            "create_time": create_time,
            "update_time": update_time,
        },
    )


def make_model_version(
    *,
    status: str,
    version: str,
    attributes: Mapping[str, Any],
    labels: Mapping[str, str] | None,
    create_time: str | None,
    update_time: str | None,
) -> dict[str, Any]:
    """A `ModelVersion` message (its `signature` is left unset)."""
    return {
        "signature": None,
        "status": status,
        "version": version,
        "attributes": make_struct(attributes),
        "labels": sorted_map(labels or {}),
        "create_time": create_time,
        "update_time": update_time,
    }


def sorted_map(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A proto `map<string, …>` as protojson prints it: keys sorted."""
    return dict(sorted(mapping.items()))


def make_struct(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A `google.protobuf.Struct`: keys sorted at every level, numbers as Go doubles print."""
    return {key: struct_value(mapping[key]) for key in sorted(mapping)}


def struct_value(value: Any) -> Any:
    """One `Struct` value: nested maps sorted, numbers rounded to doubles, integral ones as int."""
    kind = type(value)
    if kind is str or kind is bool or value is None:  # the common cases first: this is hot
        return value
    if kind is dict or isinstance(value, Mapping):
        return make_struct(value)
    if kind is list or isinstance(value, list | tuple):
        return [struct_value(item) for item in value]
    if isinstance(value, int | float):
        number = float(value)
        if number.is_integer() and abs(number) < _MAX_PLAIN_DOUBLE:
            return int(number)
        return number
    raise TypeError(f"a Struct value must be JSON-like; got {type(value).__name__}")


def dump_asset(asset: Mapping[str, Any]) -> bytes:
    """One compact protojson line (without the newline)."""
    return orjson.dumps(asset)
