"""One Merlin model (with its project and fetched versions) → one `Model` Asset (spec §2.2-2.5).

Status, URLs, env vars and transformer come from the model listing's destination snapshot;
version number, MLflow run, labels and times from the fetched Version.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from merkl.catalog.asset import (
    Asset,
    make_asset,
    make_model,
    make_model_version,
    make_owner,
    make_resource,
    make_urn,
)
from merkl.catalog.sources.merlin.decode import DecodeError, decode_feature_tables
from merkl.errors import CatalogError

FEATURE_TABLE_SPECS_ENV = "FEAST_FEATURE_TABLE_SPECS_JSONS"

Struct = dict[str, Any]


class ModelBuildError(CatalogError):
    """The model cannot become an asset (a version is missing, feature specs are bad): it is
    skipped, the run goes on."""


def iter_version_endpoints(model: Struct) -> Iterator[tuple[Struct, Struct, Struct]]:
    """`(endpoint, destination, version_endpoint)` for every routed destination, in order."""
    for endpoint in model["endpoints"]:
        for destination in endpoint["rule"]["destinations"]:
            version_endpoint = destination["version_endpoint"]
            if version_endpoint is not None:
                yield endpoint, destination, version_endpoint


def build_model_asset(
    project: Struct, model: Struct, versions: dict[int, Struct], scope: str
) -> Asset:
    """The asset of `model`, which must have at least one endpoint.

    Raises:
        ModelBuildError: a routed version is not in `versions`, or the feature table specs of a
            standard transformer are not valid JSON.
    """
    model_versions = []
    for endpoint, destination, version_endpoint in iter_version_endpoints(model):
        version = versions.get(version_endpoint["version_id"])
        if version is None:
            raise ModelBuildError(
                f"build versions for model '{model['id']}' in project '{project['id']}': "
                f"model version not found: {version_endpoint['version_id']}"
            )
        model_versions.append(_model_version(endpoint, destination, version_endpoint, version))
    try:
        upstreams = _upstreams(model, scope)
    except DecodeError as exc:
        raise ModelBuildError(
            f"build lineage for model '{model['id']}' in project '{project['id']}': "
            f"build upstreams: decode {FEATURE_TABLE_SPECS_ENV}: {exc}"
        ) from None
    endpoint_urls = [endpoint["url"] for endpoint in model["endpoints"]]
    data = make_model(
        namespace=project["name"],
        flavor=model["type"],
        versions=model_versions,
        attributes={
            "endpoint_urls": endpoint_urls,
            "mlflow_experiment_id": model["mlflow_experiment_id"],
            "mlflow_experiment_url": model["mlflow_url"],
            "project_id": project["id"],
        },
        create_time=model["created_at"],
        update_time=model["updated_at"],
    )
    return make_asset(
        urn=make_urn("merlin", scope, "model", f"{project['id']}.{model['id']}"),
        name=model["name"],
        service="merlin",
        asset_type="model",
        url=endpoint_urls[0],
        data=data,
        owners=_owners(project),
        upstreams=upstreams,
        labels=_labels(project),
    )


def _model_version(
    endpoint: Struct, destination: Struct, version_endpoint: Struct, version: Struct
) -> dict[str, Any]:
    return make_model_version(
        status=version_endpoint["status"],
        version=str(version["id"]),
        attributes={
            "deployment_mode": version_endpoint["deployment_mode"],
            "endpoint_id": endpoint["id"],
            "endpoint_url": endpoint["url"],
            "env_vars": _env_var_map(version_endpoint["env_vars"]),
            "environment_name": endpoint["environment_name"],
            "message": version_endpoint["message"],
            "mlflow_run_id": version["mlflow_run_id"],
            "mlflow_run_url": version["mlflow_url"],
            "monitoring_url": version_endpoint["monitoring_url"],
            "service_name": version_endpoint["service_name"],
            "transformer": _transformer(version_endpoint["transformer"]),
            "version_endpoint_url": version_endpoint["url"],
            "weight": destination["weight"],
        },
        labels=version["labels"],
        create_time=version["created_at"],
        update_time=version["updated_at"],
    )


def _env_var_map(env_vars: list[Struct]) -> dict[str, str] | None:
    # A repeated name keeps its last value; no variables at all prints as null.
    return {var["name"]: var["value"] for var in env_vars} or None


def _transformer(transformer: Struct) -> Struct:
    if not transformer["enabled"]:
        return {"enabled": False}
    attributes: Struct = {
        "enabled": True,
        "type": transformer["transformer_type"],
        "image": transformer["image"],
        "env_vars": _env_var_map(transformer["env_vars"]),
    }
    if transformer["command"]:
        attributes["command"] = transformer["command"]
        attributes["args"] = transformer["args"]
    return attributes


def _upstreams(model: Struct, scope: str) -> list[dict[str, str]]:
    tables: set[tuple[str, str]] = set()
    for _endpoint, _destination, version_endpoint in iter_version_endpoints(model):
        transformer = version_endpoint["transformer"]
        if not (transformer["enabled"] and transformer["transformer_type"] == "standard"):
            continue
        specs = next(
            (v["value"] for v in transformer["env_vars"] if v["name"] == FEATURE_TABLE_SPECS_ENV),
            None,
        )
        if specs is None:
            continue
        try:
            parsed = orjson.loads(specs)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(str(exc)) from None
        tables.update((t["project"], t["name"]) for t in decode_feature_tables(parsed))
    urns = sorted(
        make_urn("caramlstore", scope, "feature_table", f"{project}.{name}")
        for project, name in tables
    )
    return [
        make_resource(urn, service="caramlstore", resource_type="feature_table") for urn in urns
    ]


def _owners(project: Struct) -> list[dict[str, str]]:
    emails = dict.fromkeys(project["administrators"])  # de-duplicated, first occurrence wins
    return [make_owner(email, email=email) for email in emails]


def _labels(project: Struct) -> dict[str, str]:
    labels = {"team": project["team"], "stream": project["stream"]}
    for label in project["labels"]:
        labels[label["key"]] = label["value"]
    return labels
