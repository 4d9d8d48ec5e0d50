"""The `merlin` source: one Asset per deployed Merlin model (exactly `spec/merlin-extractor.md`).

Projects are processed by `worker_count` threads; inside a project, models and their versions
are fetched in order. A failed models call skips the project, a failed version call or bad
feature-table specs skip the model (both reported as warnings); a failed projects call, or an
unexpected error in a worker, fails the extraction.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from pydantic import Field, SecretStr, field_validator

from merkl.catalog.config_types import GoDuration
from merkl.catalog.plugin import (
    Emit,
    PluginConfig,
    PluginContext,
    PluginInfo,
    RetryableError,
    Source,
)
from merkl.catalog.sources.merlin.auth import (
    DEFAULT_AUDIENCE,
    GoogleBearerAuth,
    decode_service_account,
    load_credentials,
)
from merkl.catalog.sources.merlin.build import (
    ModelBuildError,
    build_model_asset,
    iter_version_endpoints,
)
from merkl.catalog.sources.merlin.client import (
    MerlinClient,
    MerlinClientError,
    new_http_client,
    parse_base_url,
)
from merkl.errors import CatalogError, ExtractError

_MILLISECOND_NS = 1_000_000

SAMPLE_CONFIG = """\
# Merlin's API base URL: the part before /v1
url: https://my-company.com/api/merlin/
# A service account key, base64-encoded (`base64 -w0 key.json`); leave it out to use
# Google's Application Default Credentials
service_account_base64: ${MERLIN_SERVICE_ACCOUNT_BASE64:-}
# Timeout of each HTTP request to Merlin (Go duration)
request_timeout: 10s
# Number of projects extracted in parallel
worker_count: 5
"""


class MerlinConfig(PluginConfig):
    url: str = Field(
        description="Merlin's API base URL, the part before /v1 (http:// if no scheme)",
        json_schema_extra={"example": "my-company.com/api/merlin/"},
    )
    service_account_base64: SecretStr = Field(
        default=SecretStr(""),
        description="service account key in base64; blank: Application Default Credentials",
        json_schema_extra={"type": "secret string", "default": '""'},
    )
    request_timeout: GoDuration = Field(
        default=10_000_000_000,
        description="timeout of each request to Merlin, a Go duration (at least 1ms)",
        json_schema_extra={"type": "duration", "default": "10s"},
    )
    worker_count: int = Field(
        default=5, ge=1, description="number of projects extracted in parallel"
    )
    use_id_token: bool = Field(
        default=False,
        description="send a Google ID token for `audience` instead of an access token "
        "(Meteor after 2024; needs a service account key)",
    )
    audience: str = Field(default=DEFAULT_AUDIENCE, description="audience of the ID token")

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not url:
            raise ValueError("validation for field 'url' failed on the 'required' tag")
        parse_base_url(url)
        return url

    @field_validator("service_account_base64")
    @classmethod
    def _check_key(cls, key: SecretStr) -> SecretStr:
        # Shape only; reading the private key (slow: it is validated) waits for setup.
        if key.get_secret_value().strip():
            decode_service_account(key.get_secret_value())
        return key

    @field_validator("request_timeout")
    @classmethod
    def _check_timeout(cls, nanos: int) -> int:
        if nanos < _MILLISECOND_NS:
            raise ValueError(
                "validation for field 'request_timeout' failed on the 'min' tag: "
                "expected at least 1ms (a bare number counts nanoseconds; write e.g. '10s')"
            )
        return nanos


class MerlinSource(Source[MerlinConfig]):
    """Merlin models as `Model` assets, with versions per endpoint and destination."""

    name = "merlin"
    Config = MerlinConfig
    info = PluginInfo(
        description="Machine learning models deployed on Merlin (caraml-dev/merlin)",
        sample_config=SAMPLE_CONFIG,
        tags=("gcp", "extractor", "model"),
    )

    def __init__(self, config: MerlinConfig, ctx: PluginContext) -> None:
        super().__init__(config, ctx)
        try:
            base_url = parse_base_url(config.url)
            key = config.service_account_base64.get_secret_value()
            info = decode_service_account(key) if key.strip() else None
        except ValueError as exc:
            raise CatalogError(f"init Merlin extractor: new Merlin client: {exc}") from None
        try:
            credentials = load_credentials(
                info, use_id_token=config.use_id_token, audience=config.audience
            )
        except CatalogError as exc:
            raise CatalogError(f"init Merlin extractor: new Merlin client: {exc}") from None
        self._http = new_http_client(config.request_timeout)
        auth = GoogleBearerAuth(credentials, self._http)
        self._client = MerlinClient(base_url, config.request_timeout, self._http, auth)

    def close(self) -> None:
        self._http.close()

    def extract(self, emit: Emit) -> None:
        try:
            projects = self._client.fetch_projects()
        except MerlinClientError as exc:
            error = RetryableError if exc.is_retryable else ExtractError
            raise error(str(exc)) from exc
        stop = threading.Event()
        workers = max(1, min(self.config.worker_count, len(projects)))
        with ThreadPoolExecutor(workers, thread_name_prefix="merlin") as pool:
            futures = [pool.submit(self._extract_project, p, emit, stop) for p in projects]
            try:
                done, _pending = wait(futures, return_when=FIRST_EXCEPTION)
            finally:
                # On the first fatal error (or Ctrl-C) the rest is abandoned.
                stop.set()
                for future in futures:
                    future.cancel()
        for future in done:
            failure = future.exception()
            if failure is not None:
                raise failure

    def _extract_project(self, project: dict[str, Any], emit: Emit, stop: threading.Event) -> None:
        try:
            self._extract_models(project, emit, stop)
        except Exception as exc:
            # Go recovers a panic in a worker into this error; it fails the whole extraction,
            # and no worker starts another project.
            stop.set()
            raise ExtractError(f"extract project '{project['id']}': panic: {exc}") from exc

    def _extract_models(self, project: dict[str, Any], emit: Emit, stop: threading.Event) -> None:
        if stop.is_set():
            return
        try:
            models = self._client.fetch_models(project["id"])
        except MerlinClientError as exc:
            self.ctx.warn(f"merlin extractor: project={project['id']}: {exc} (project skipped)")
            return
        for model in models:
            if stop.is_set():
                return
            if not model["endpoints"]:
                continue  # not deployed: no asset
            versions = self._fetch_versions(project, model)
            try:
                asset = build_model_asset(project, model, versions, self.ctx.scope)
            except ModelBuildError as exc:
                self.ctx.warn(
                    f"merlin extractor: project={project['id']} model={model['id']}: {exc} "
                    "(model skipped)"
                )
                continue
            emit(asset)

    def _fetch_versions(self, project: dict[str, Any], model: dict[str, Any]) -> dict[int, Any]:
        # One call per routed destination, repeated ids included, as Meteor does.
        versions: dict[int, Any] = {}
        for _endpoint, _destination, version_endpoint in iter_version_endpoints(model):
            version_id = version_endpoint["version_id"]
            try:
                versions[version_id] = self._client.fetch_version(model["id"], version_id)
            except MerlinClientError as exc:
                self.ctx.warn(
                    f"merlin extractor: project={project['id']} model={model['id']}: {exc}"
                )
        return versions
