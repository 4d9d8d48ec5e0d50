#!/usr/bin/env bash
# `make demo`: the seed's pipelines end to end on the embedded default (local cache + SQLite).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
demo="${MERKL_DEMO_DIR:-$here/../build/demo}"
rm -rf "$demo" && mkdir -p "$demo"
cp -r "$here"/pipeline1.py "$here"/outs_lambda.py "$here"/pipeline2.py "$here"/data "$demo"/
cd "$demo"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step merkl init
step merkl run pipeline1.my_pipeline 42            # runs task1 and task2
step merkl run pipeline1.my_pipeline 42            # cache hit: no task body runs
step merkl run --dry pipeline1.my_pipeline 43      # hashes only, nothing runs
sed -i 's/return input_value\*\*2/return input_value * input_value/' pipeline1.py
step merkl run pipeline1.my_pipeline 42            # only task2 re-runs after its edit
step merkl run outs_lambda.pipeline                 # ([1, 2, 3], [4, 5, 6])
step merkl run pipeline2.pipeline                   # trains, evaluates, writes model.bin
step merkl run pipeline2.pipeline                   # all cached
step merkl run --dry --fill-missing pipeline2.pipeline --epochs 100
step cat model.bin.merkl
echo
echo "demo finished in $demo"
