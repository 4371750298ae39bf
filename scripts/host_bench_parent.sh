#!/bin/bash
# Host path before/after: `xapp bench --host` on the engine and publishers of the commit before the
# per-batch hot path (641254b^, with the bench grafted on and per-decision shims for the two helpers
# it calls) and on this tree, alternating, in the same window. Outputs: docs/bench/host_{before,after}_<i>.json
#   scripts/host_bench_parent.sh [rounds]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
parent=$(mktemp -d)
trap 'rm -rf "$parent"' EXIT
git -C "$root" archive 641254b^ | tar -x -C "$parent"
cp "$root"/xapp/engine/{hostbench,bench,cli}.py "$parent/xapp/engine/"
cat > "$parent/xapp/ops/decision_metrics.py" <<'PY'
def record_decisions(metrics, decisions):  # the parent's XApp._deliver metrics, one decision at a time
    latency = metrics.stage_latency.labels("indication_to_decision")
    for d in decisions:
        seconds = max(0.0, d.latency_s)
        latency.observe(seconds)
        metrics.decided(d.task, d.node_id, d.gflops, seconds, d.t_decision_ns / 1e9)
        if d.truth is not None:
            metrics.decisions_scored.labels(d.task, "correct" if d.label == d.truth else "wrong").inc()
PY
printf '\n\ndef redis_fields(decisions):  # the parent Redis writer: fields(d) per decision\n    return [(d.node_id, d.task, fields(d)) for d in decisions]\n' >> "$parent/xapp/publish/codec.py"
sed -i 's/^    def _run_group(/    embed = _embed\n\n    def _run_group(/' "$parent/xapp/engine/runner.py"
mkdir -p "$root/docs/bench"
for i in $(seq 1 "${1:-1}"); do
  for side in before after; do
    dir=$root; [ $side = before ] && dir=$parent
    (cd "$dir" && nice -n 10 "$python" -m xapp bench --host --json "$root/docs/bench/host_${side}_$i.json")
  done
done
