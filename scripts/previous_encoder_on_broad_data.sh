#!/usr/bin/env bash
# The gain from data alone (issue 11): the encoder shipped before the broad data (commit f631e46), its
# heads trained on the narrow data (as shipped then) and retrained on the broad data, scored on our broad
# test frames and on the independent cross-check. Writes runs/old/; ~40 min on 2 busy CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
xapp=${XAPP:-.venv/bin/xapp}
mkdir -p runs/old runs/eval
git show f631e46:xapp/assets/encoder.safetensors > runs/old/encoder.safetensors
git show f631e46:xapp/assets/encoder.json > runs/old/encoder.json
rm -rf runs/old/heads_narrow && mkdir -p runs/old/heads_narrow
git archive f631e46 heads | tar -x -C runs/old/heads_narrow --strip-components=1
$xapp heads train --checkpoint runs/old/encoder.safetensors --out runs/old/heads_broad --threads 2 --quiet
for task in modulation interference beam; do
  $xapp data generate --task $task --n 2000 --seed 7002 --out runs/eval/ours_$task.npz
  $xapp data generate --source crosscheck --task $task --n 2000 --seed 1 --out runs/eval/cross_$task.npz
done
.venv/bin/python - <<'PY'
import numpy as np
for src in ("ours", "cross"):
    for task in ("modulation", "interference", "beam"):
        d = np.load(f"runs/eval/{src}_{task}.npz", allow_pickle=False)
        np.savez(f"runs/eval/{src}_{task}_1k.npz", **{k: d[k][:1000] if d[k].ndim and len(d[k]) == 2000 else d[k] for k in d.files})
PY
for heads in narrow broad; do for src in ours cross; do for task in modulation interference beam; do
  $xapp eval --task $task --data runs/eval/${src}_${task}_1k.npz --manifest runs/old/heads_$heads/manifest.yaml \
    --checkpoint runs/old/encoder.safetensors --json > runs/eval/old_${heads}_${src}_${task}.json
done; done; done
