"""The OpenAPI 3.1 description of a server: one run and one dry-run path per served pipeline.

Each pipeline's request schema lists its parameters (typed where they are annotated `int`,
`float`, `str`, `bool` or `Path`), so generated clients and API fuzzers know what to send.
"""

from __future__ import annotations

import inspect
import pathlib
from typing import Any

from merkl.serve.pipeline import Pipeline
from merkl.serve.signing import SIGNATURE_HEADER

_JSON_TYPES: dict[Any, dict[str, str]] = {
    int: {"type": "integer"},
    float: {"type": "number"},
    str: {"type": "string"},
    bool: {"type": "boolean"},
    pathlib.Path: {"type": "string"},
}
_HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_ERRORS = {
    "400": "The body is not JSON.",
    "403": f"Client-sent cache values without a valid {SIGNATURE_HEADER} header, or an "
    f"argument naming a file outside the repository.",
    "404": "No such pipeline is served.",
    "413": "The body is larger than the server's limit.",
    "422": "Arguments or cache values that do not fit the pipeline.",
    "500": "The pipeline or one of its tasks raised; `task` names the task, `type` the "
    "exception (its text only on a server started with --debug).",
    "503": "Too many requests hang in this server process; try again later.",
    "504": "The request took longer than the server's --timeout.",
}
_WORKERS = {
    "slots": {"type": "integer"},
    "busy": {"type": "integer"},
    "queued": {"type": "integer"},
    "hung": {"type": "integer"},
}


def openapi_document(pipelines: dict[str, Pipeline]) -> dict[str, Any]:
    """The OpenAPI document for a server serving `pipelines` (target -> pipeline)."""
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness, the served targets, and busy and hung task slots.",
                "responses": {
                    "200": _json_response("Serving.", {"$ref": "#/components/schemas/Health"})
                },
            }
        },
    }
    schemas: dict[str, Any] = {
        "Error": _object(
            {"error": {"type": "string"}, "task": {"type": "string"}, "type": {"type": "string"}},
            required=["error"],
        ),
        "Health": _object(
            {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "targets": {"type": "array", "items": {"type": "string"}},
                "workers": _object({**_WORKERS, "lookups": _object(_WORKERS)}),
            }
        ),
        "RunResponse": _object(
            {
                "result": {"description": "The pipeline's result as JSON."},
                "hashes": {"type": "array", "items": {"anyOf": [_HASH, {"type": "null"}]}},
                "stats": _object(
                    {
                        "ran": {"type": "integer"},
                        "loaded": {"type": "integer"},
                        "client_values": {"type": "integer"},
                    }
                ),
            },
            required=["result", "hashes"],
        ),
        "DryRunResponse": _object(
            {
                "outputs": {
                    "type": "array",
                    "items": _object(
                        {
                            "hash": _HASH,
                            "task": {"type": "string"},
                            "index": {"type": "integer"},
                            "cached": {"type": "boolean"},
                        },
                        required=["hash", "task", "cached"],
                    ),
                }
            },
            required=["outputs"],
        ),
    }
    for target, pipeline in sorted(pipelines.items()):
        request_name = f"Request.{target}"
        schemas[request_name] = _request_schema(pipeline)
        body = {
            "required": False,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{request_name}"}}
            },
        }
        paths[f"/v1/run/{target}"] = {
            "post": {
                "operationId": f"run.{target}",
                "summary": f"Run {target}; cached outputs are loaded, not recomputed.",
                "description": pipeline.doc,
                "parameters": [
                    {
                        "name": SIGNATURE_HEADER,
                        "in": "header",
                        "required": False,
                        "description": "Hex HMAC-SHA256 of the raw body with the shared secret; "
                        "required when the body has `cache` values.",
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": body,
                "responses": _responses("#/components/schemas/RunResponse"),
            }
        }
        paths[f"/v1/dry-run/{target}"] = {
            "post": {
                "operationId": f"dry-run.{target}",
                "summary": f"The outputs {target} needs for these arguments; which are cached.",
                "requestBody": body,
                "responses": _responses("#/components/schemas/DryRunResponse"),
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "merkl serve", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _request_schema(pipeline: Pipeline) -> dict[str, Any]:
    kinds = inspect.Parameter
    properties: dict[str, Any] = {}
    required: list[str] = []
    positional = 0
    for name, param in pipeline.signature.parameters.items():
        if param.kind in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD):
            continue
        if param.kind is not kinds.KEYWORD_ONLY:
            positional += 1
        if param.kind is not kinds.POSITIONAL_ONLY:
            properties[name] = dict(_JSON_TYPES.get(pipeline.hints.get(name), {}))
            if param.default is param.empty:
                required.append(name)
    kwargs = _object(properties, description="Named arguments.")
    kinds_present = {p.kind for p in pipeline.signature.parameters.values()}
    if kinds.VAR_KEYWORD not in kinds_present:
        kwargs["additionalProperties"] = False
    args: dict[str, Any] = {"type": "array", "description": "Positional arguments, in order."}
    if kinds.VAR_POSITIONAL not in kinds_present:
        args["maxItems"] = positional
    schema = _object(
        {
            "args": args,
            "kwargs": kwargs,
            "cache": {
                "type": "object",
                "propertyNames": _HASH,
                "description": f"Client-sent values by output hash (needs {SIGNATURE_HEADER}).",
            },
        },
        description=f"Arguments of {pipeline.name}; required by name or position: "
        f"{', '.join(required) or 'none'}.",
    )
    schema["additionalProperties"] = False
    return schema


def _object(
    properties: dict[str, Any], required: list[str] | None = None, description: str = ""
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if description:
        schema["description"] = description
    return schema


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(ok_schema: str) -> dict[str, Any]:
    responses = {"200": _json_response("OK.", {"$ref": ok_schema})}
    for status, description in _ERRORS.items():
        responses[status] = _json_response(description, {"$ref": "#/components/schemas/Error"})
    return responses
