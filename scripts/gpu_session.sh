#!/usr/bin/env bash
# One short GPU lease, prepared in advance: the CUDA checks (scripts/gpu_check.py), then pre-training
# variants trained side by side on the one GPU until a deadline, each exported and probed exactly as
# the documented commands do it (`xapp pretrain --config configs/pretrain.yaml --out runs/pretrain
# --export`, then `xapp probe ... --card`), each in its own copy of the tree.
#
#   scripts/gpu_session.sh OUT_DIR BUDGET_S NAME:FRAME_WEIGHT:FRAME_PASS ...
#
# Every variant shares the base settings below; its steps are set from a calibration run made while
# all variants run, so that all of them end by the deadline. Everything but the encoders is packed
# into OUT_DIR/results.tgz (the device tool returns few files).
# Dry run without a GPU: DEVICE=cpu CALIBRATION_STEPS=3 CHECK=0 scripts/gpu_session.sh /tmp/out 120 a:1:full
set -uo pipefail
out=$1 budget=$2
shift 2
start=$(date +%s)
device=${DEVICE:-cuda} calibration=${CALIBRATION_STEPS:-60}
repo=$PWD
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$repo
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/nvidia-smi.txt" 2>&1

if [ "${CHECK:-1}" = 1 ]; then
  timeout 90 python3 scripts/gpu_check.py --json "$out/gpu_check.json" > "$out/gpu_check.log" 2>&1
  echo "gpu_check rc=$? after $(( $(date +%s) - start )) s"
fi

reserve=70  # export + probe + packing after training
train_until=$(( start + budget - reserve ))

config() {  # name frame_weight frame_pass steps
  cat <<EOF
# Pre-trained on one GPU (scripts/gpu_session.sh, variant $1); on 2 CPU cores the same run takes far longer.
encoder: {dim: 256, depth: 8, heads: 8, mlp_ratio: 4.0, patch: 16}
steps: $4
batch: 256
lr: 5.0e-4
warmup: 300
weight_decay: 0.05
mask_ratio: 0.7
decoder_dim: 128
decoder_depth: 2
frame_weight: $2
frame_pass: $3
seed: 0
checkpoint_every: 1000
threads: 2
EOF
}

variant() {  # name:frame_weight:frame_pass
  IFS=: read -r name weight pass <<< "$1"
  local tree=/tmp/variant-$name log=$out/$name.log
  mkdir -p "$tree" && tar -C "$repo" --exclude=.git --exclude=.whl --exclude=.venv --exclude=runs -cf - . | tar -C "$tree" -xf -
  cd "$tree" || return
  export PYTHONPATH=${PYTHONPATH/$repo/$tree}
  config "$name" "$weight" "$pass" "$calibration" > /tmp/calibrate-$name.yaml
  python3 -m xapp.cli pretrain --config /tmp/calibrate-$name.yaml --out /tmp/calibrate-$name --device $device > "$log" 2>&1 \
    || { echo "$name: calibration failed" | tee -a "$log"; return 1; }
  local rate steps
  rate=$(python3 -c "import json; s = json.load(open('/tmp/calibrate-$name/state.json')); print(s['step'] / s['wall_s'])")
  steps=$(python3 -c "print(int($rate * ($train_until - $(date +%s)) * 0.92))")
  echo "$name: calibrated $rate steps/s -> $steps steps" | tee -a "$log"
  config "$name" "$weight" "$pass" "$steps" > configs/pretrain.yaml
  python3 -m xapp.cli pretrain --config configs/pretrain.yaml --out runs/pretrain --device $device --export >> "$log" 2>&1 \
    || { echo "$name: pre-training failed" | tee -a "$log"; return 1; }
  python3 -m xapp.cli probe --tasks modulation,beam,interference --train 3000 --test 1500 --device $device --card \
    --json runs/probe.json >> "$log" 2>&1
  mkdir -p "$out/$name"
  cp configs/pretrain.yaml runs/pretrain/state.json runs/probe.json xapp/assets/encoder.json \
     xapp/assets/ENCODER_CARD.md xapp/assets/ENCODER_LOSS.png "$out/$name/"
  cp xapp/assets/encoder.safetensors "$out/$name.safetensors"
  echo "$name: done after $(( $(date +%s) - start )) s" | tee -a "$log"
}

for spec in "$@"; do variant "$spec" & done
wait
for spec in "$@"; do
  name=${spec%%:*}
  [ -f "$out/$name/probe.json" ] && python3 -c "
import json; r = json.load(open('$out/$name/probe.json'))
print('$name', {t: (round(100 * v['pretrained'], 1), round(100 * v['random'], 1)) for t, v in r['tasks'].items()})"
done
tar -C "$out" -czf /tmp/results.tgz --exclude='*.safetensors' . && mv /tmp/results.tgz "$out/"
find "$out" -mindepth 1 -maxdepth 1 ! -name '*.safetensors' ! -name results.tgz -exec rm -rf {} +
ls -la "$out"
