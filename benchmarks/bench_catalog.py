"""Catalog benchmark (issue 8): the merlin source against a fake Merlin with 20 ms per call.

The fake Merlin (a separate process, so its CPU is not counted) serves 20 projects x 10 models,
each model routing traffic to 2 versions: 1 + 20 + 400 = 421 GET calls, each answered after
20 ms. The same recipe runs with `worker_count: 1` (the peer: Meteor's sequential baseline) and
`worker_count: 5`, writing ndjson through the file sink.

Targets: worker_count 5 >= 4x faster than worker_count 1; CPU time per emitted asset < 1 ms
(process CPU of the whole run, all threads, divided by the assets emitted).

Run: `.venv-bench/bin/python benchmarks/bench_catalog.py` (`make bench` runs every benchmark).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PROJECTS, MODELS_PER_PROJECT, VERSIONS_PER_MODEL = 20, 10, 2
LATENCY_S = 0.020
TARGET_SPEEDUP, TARGET_CPU_MS = 4.0, 1.0


# -- the fake Merlin (runs in its own process) -------------------------------------------


def _project(pid: int) -> dict:
    return {
        "id": pid,
        "name": f"project-{pid}",
        "administrators": [f"admin{pid}@example.com"],
        "team": "ml",
        "stream": "bench",
        "labels": [{"key": "tier", "value": "gold"}],
        "created_at": "2022-01-01T00:00:00Z",
        "updated_at": "2022-01-01T00:00:00Z",
    }


def _model(pid: int, index: int) -> dict:
    mid = pid * 100 + index
    destinations = [
        {
            "version_endpoint_id": f"ve-{mid}-{v}",
            "weight": 50,
            "version_endpoint": {
                "version_id": v,
                "status": "running",
                "url": f"http://m{mid}-{v}.project-{pid}.models.example.com/v1/models/m{mid}-{v}",
                "service_name": f"m{mid}-{v}-predictor.project-{pid}.models.example.com",
                "environment_name": "staging",
                "message": "",
                "env_vars": [{"name": "WORKERS", "value": "2"}],
                "transformer": {
                    "enabled": True,
                    "transformer_type": "standard",
                    "image": "t:1",
                    "env_vars": [
                        {
                            "name": "FEAST_FEATURE_TABLE_SPECS_JSONS",
                            "value": '[{"name": "driver", "project": "geo"}]',
                        }
                    ],
                },
                "deployment_mode": "serverless",
                "created_at": "2022-06-01T10:00:00.123456Z",
                "updated_at": "2022-06-01T10:00:00Z",
            },
        }
        for v in range(1, VERSIONS_PER_MODEL + 1)
    ]
    return {
        "id": mid,
        "project_id": pid,
        "mlflow_experiment_id": mid,
        "name": f"model-{mid}",
        "type": "pyfunc",
        "mlflow_url": f"http://mlflow/#/experiments/{mid}",
        "endpoints": [
            {
                "id": mid * 10,
                "status": "serving",
                "environment_name": "staging",
                "url": f"m{mid}.project-{pid}.models.example.com",
                "rule": {"destinations": destinations},
                "created_at": "2022-06-01T10:00:00Z",
                "updated_at": "2022-06-01T10:00:00Z",
            }
        ],
        "created_at": "2022-05-25T04:57:24.972027Z",
        "updated_at": "2022-11-10T06:13:02.18Z",
    }


def _version(mid: int, vid: int) -> dict:
    return {
        "id": vid,
        "model_id": mid,
        "mlflow_run_id": f"run{mid}{vid}",
        "mlflow_url": f"http://mlflow/#/experiments/{mid}/runs/run{mid}{vid}",
        "labels": {"env": "staging"},
        "created_at": "2022-10-28T06:11:52.148118Z",
        "updated_at": "2022-10-28T06:11:52.148118Z",
    }


class _FakeMerlin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server would
    # Headers and body go out in separate writes; with Nagle on, each answer would wait for
    # the client's delayed ACK (~40 ms) and the benchmark would measure that instead.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        time.sleep(LATENCY_S)
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts == ["v1", "projects"]:
            body = [_project(pid) for pid in range(1, PROJECTS + 1)]
        elif parts[:2] == ["v1", "projects"] and parts[3:] == ["models"]:
            body = [_model(int(parts[2]), i) for i in range(MODELS_PER_PROJECT)]
        else:  # v1/models/{m}/versions/{v}
            body = _version(int(parts[2]), int(parts[4]))
        self._answer(json.dumps(body).encode())

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(json.dumps({"access_token": "bench-token", "expires_in": 3600}).encode())

    def _answer(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


def serve() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeMerlin)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


# -- the benchmark ------------------------------------------------------------------------


def _service_account_b64(token_uri: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "bench",
        "private_key_id": "k",
        "private_key": pem,
        "client_email": "bench@bench.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    return base64.b64encode(json.dumps(info).encode()).decode()


def _write_recipe(folder: Path, url: str, key_b64: str, workers: int) -> Path:
    path = folder / f"merlin-{workers}.yaml"
    path.write_text(
        "version: v1beta1\nsource:\n  name: merlin\n  scope: bench\n  config:\n"
        f"    url: {url}\n    service_account_base64: {key_b64}\n    worker_count: {workers}\n"
        f"sinks:\n  - name: file\n    config: {{path: {folder}/assets-{workers}.ndjson, format: "
        f"ndjson}}\n"
    )
    return path


def _run(recipe_path: Path) -> tuple[float, float, int]:
    """Wall seconds, process CPU seconds (all threads) and assets of one run of the recipe."""
    from merkl.catalog.recipe import load_recipe
    from merkl.catalog.runner import RunOptions, run_recipe

    recipe = load_recipe(recipe_path, environ={})
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_recipe(recipe, RunOptions(max_retries=0, environ={}))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if not result.success:
        raise SystemExit(f"run of {recipe_path.name} failed: {result.error}")
    return wall, cpu, result.record_count


def _setup_cpu(recipe_path: Path) -> float:
    """CPU seconds of the one-time part of a run: validate the config, read the key, open the
    connection pool (then close it again)."""
    from merkl.catalog.plugin import PluginContext
    from merkl.catalog.recipe import load_recipe
    from merkl.catalog.validate import resolve_recipe

    recipe = load_recipe(recipe_path, environ={})
    cpu = time.process_time()
    source = resolve_recipe(recipe).source
    source.cls(source.config, PluginContext("bench", scope="bench")).close()
    return time.process_time() - cpu


def _httpx_cpu_per_call(url: str) -> float:
    """CPU seconds of one bare httpx GET of a version (the floor under every Merlin call)."""
    import httpx

    with httpx.Client() as client:
        target = httpx.URL(f"{url}v1/models/101/versions/1")
        client.get(target)
        cpu = time.process_time()
        for _ in range(50):
            client.get(target, headers={"Authorization": "Bearer bench-token"})
        return (time.process_time() - cpu) / 50


def _own_cpu_per_asset(url: str) -> float:
    """CPU seconds per asset of merkl's own work on the same responses, without the network:
    Go-style decoding, building the asset, serialising it."""
    import httpx
    import orjson

    from merkl.catalog.asset import dump_asset
    from merkl.catalog.sources.merlin.build import build_model_asset
    from merkl.catalog.sources.merlin.decode import decode_models, decode_projects, decode_version

    with httpx.Client() as client:
        project = decode_projects(orjson.loads(client.get(f"{url}v1/projects").content))[0]
        models_body = client.get(f"{url}v1/projects/{project['id']}/models").content
        version_bodies = {
            v: client.get(f"{url}v1/models/101/versions/{v}").content
            for v in range(1, VERSIONS_PER_MODEL + 1)
        }
    rounds = 20
    cpu = time.process_time()
    for _ in range(rounds):
        for model in decode_models(orjson.loads(models_body)):
            versions = {
                v: decode_version(orjson.loads(body)) for v, body in version_bodies.items()
            }
            dump_asset(build_model_asset(project, model, versions, "bench"))
    return (time.process_time() - cpu) / (rounds * MODELS_PER_PROJECT)


def main() -> int:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}/"
        key_b64 = _service_account_b64(f"{url}token")
        expected = PROJECTS * MODELS_PER_PROJECT
        calls = 1 + PROJECTS + expected * VERSIONS_PER_MODEL
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            one, five = (_write_recipe(folder, url, key_b64, n) for n in (1, 5))
            _run(five)  # warm-up: imports, first connections
            sequential = _run(one)
            parallel = _run(five)
            setup = min(_setup_cpu(five) for _ in range(3))
            floor = _httpx_cpu_per_call(url)
            own = _own_cpu_per_asset(url)
    finally:
        server.terminate()
        server.wait()
    for _wall, _cpu, assets in (sequential, parallel):
        if assets != expected:
            raise SystemExit(f"expected {expected} assets, got {assets}")
    speedup = sequential[0] / parallel[0]
    whole = [cpu / assets * 1000 for _wall, cpu, assets in (sequential, parallel)]
    steady = [(cpu - setup) / assets * 1000 for _wall, cpu, assets in (sequential, parallel)]
    http_share = calls / expected * floor * 1000
    print(
        f"catalog merlin ({PROJECTS} projects x {MODELS_PER_PROJECT} models x "
        f"{VERSIONS_PER_MODEL} versions, {LATENCY_S * 1000:.0f} ms per call, {calls} calls):"
    )
    print(f"  worker_count 1 (peer): {sequential[0]:.2f} s   worker_count 5: {parallel[0]:.2f} s")
    print(
        f"  ratio: worker_count 5 is {speedup:.2f}x faster than worker_count 1 "
        f"(target >= {TARGET_SPEEDUP:.0f}x)"
    )
    print(
        f"  CPU per emitted asset: {steady[0]:.3f} ms (worker_count 1), {steady[1]:.3f} ms "
        f"(worker_count 5) (target < {TARGET_CPU_MS:.0f} ms)"
    )
    print(
        f"    whole runs incl. one-time setup of {setup * 1000:.0f} ms: {whole[0]:.3f} / "
        f"{whole[1]:.3f} ms per asset"
    )
    print(
        f"    where it goes: bare httpx GETs {http_share:.3f} ms ({calls / expected:.2f} per asset"
        f" x {floor * 1000:.3f} ms); decoding, building and serialising {own * 1000:.3f} ms"
    )
    is_fast = speedup >= TARGET_SPEEDUP
    is_lean = max(steady) < TARGET_CPU_MS
    print(
        f"  speed-up target {'met' if is_fast else 'MISSED'}; "
        f"CPU target {'met' if is_lean else 'MISSED'}"
    )
    return 0 if is_fast else 1


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        sys.exit(main())
