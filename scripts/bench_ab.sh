#!/bin/bash
# Before/after in one window: `xapp bench ARGS` on the tree of commit BASE (a git archive in a temporary
# directory, run with its own code) and on this tree, taking turns, ROUNDS times. Outputs:
# docs/bench/<name>_{before,after}_<i>.json, each with the load average it ran under.
#   scripts/bench_ab.sh BASE ROUNDS NAME -- ARGS...
#   e.g. scripts/bench_ab.sh 65f94d4 2 ingest_ab -- --ingest 2000,3000,4000,5000,6000,7000 --seconds 5 --frames-per-indication 8
set -euo pipefail
base=$1 rounds=$2 name=$3
shift 4
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
git -C "$root" archive "$base" | tar -x -C "$before"
mkdir -p "$root/docs/bench"
for i in $(seq 1 "$rounds"); do
  for side in before after; do
    dir=$root; [ $side = before ] && dir=$before
    echo "== $side, round $i ($(cut -d' ' -f1-3 /proc/loadavg))"
    (cd "$dir" && PYTHONPATH=$dir nice -n 10 "$python" -m xapp bench "$@" --json "$root/docs/bench/${name}_${side}_$i.json")
  done
done
