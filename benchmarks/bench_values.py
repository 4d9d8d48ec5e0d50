"""What exact values and the canonical code walk cost (issue 16), next to what they replace.

1. `JsonSerializer().dump` (type-checked, exact) vs bare `orjson.dumps` on plain data: 10^6 floats
   and 10^5 small dicts; a 1000x1000 float64 array dumped and loaded (typed envelope).
2. The canonical AST digest of a 360-line module vs `ast.dump` + BLAKE3 of it (what merkl hashed
   before), and `ast.parse`, which both need.

Run: `.venv/bin/python benchmarks/bench_values.py` (no peers needed; best of several runs).
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import numpy as np
import orjson

from merkl.canonical_ast import ast_digest
from merkl.serializers import JsonSerializer

MODULE = Path(__file__).resolve().parents[1] / "src" / "merkl" / "ops" / "verify.py"


def best_ms(fn: Callable[[], object], repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> None:
    json = JsonSerializer()
    floats = [float(i) for i in range(1_000_000)]
    dicts = {f"k{i}": {"a": i, "b": [1.5, 2.5], "c": "x"} for i in range(100_000)}
    array = np.random.default_rng(0).random((1000, 1000))
    array_data = json.dump(array)
    print(
        f"10^6 floats: merkl JSON {best_ms(lambda: json.dump(floats)):.0f} ms, "
        f"orjson {best_ms(lambda: orjson.dumps(floats)):.0f} ms"
    )
    print(
        f"10^5 small dicts: merkl JSON {best_ms(lambda: json.dump(dicts)):.0f} ms, "
        f"orjson {best_ms(lambda: orjson.dumps(dicts)):.0f} ms"
    )
    print(
        f"1000x1000 float64 array: dump {best_ms(lambda: json.dump(array)):.0f} ms, "
        f"load {best_ms(lambda: json.load(array_data)):.0f} ms, "
        f"{len(array_data) / 1e6:.1f} MB"
    )
    source = MODULE.read_bytes()
    lines = source.count(b"\n")
    tree = ast.parse(source)
    dump_ms = best_ms(
        lambda: blake3.blake3(ast.dump(tree, include_attributes=False).encode()).hexdigest(), 20
    )
    print(
        f"code hash of a {lines}-line module: canonical walk "
        f"{best_ms(lambda: ast_digest(tree), 20):.1f} ms, ast.dump + BLAKE3 {dump_ms:.1f} ms, "
        f"ast.parse {best_ms(lambda: ast.parse(source), 20):.1f} ms"
    )


if __name__ == "__main__":
    main()
