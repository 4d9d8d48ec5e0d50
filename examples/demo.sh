#!/usr/bin/env bash
# `make demo`: the seed's pipelines end to end on the embedded default (local cache + SQLite).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
demo="$(realpath -m "${MERKL_DEMO_DIR:-$here/../build/demo}")"
rm -rf "$demo" "$demo-remote" "$demo-clone" && mkdir -p "$demo"
cp -r "$here"/pipeline1.py "$here"/outs_lambda.py "$here"/pipeline2.py "$here"/lineage.yaml \
    "$here"/data "$demo"/
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

# Track the training data; see the DAG, the run log and the lineage.
step merkl track data/train.csv
step merkl status
step merkl dag pipeline2.pipeline
step merkl log -n 5
step merkl catalog run lineage.yaml
step head -c 300 lineage.ndjson; echo

# Share the caches through a directory remote; a fresh checkout runs nothing.
step merkl remote add origin "$demo-remote" --default
step merkl push
clone="$demo-clone"
mkdir -p "$clone"
cp -r pipeline2.py merkl.toml data "$clone"/ && rm -f "$clone"/data/train.csv
cp model.bin.merkl "$clone"/
cd "$clone"
step merkl init
step merkl pull
step merkl run pipeline2.pipeline                   # 0 task(s) run: everything came from the remote
echo
echo "demo finished in $demo (and its fresh checkout in $clone)"
echo
echo "See it in a browser (pipelines, DAGs, runs, files, lineage):"
echo "  cd $demo && merkl ui      # then open http://127.0.0.1:8765/"
