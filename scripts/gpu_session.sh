#!/usr/bin/env bash
# One short GPU lease, prepared in advance: the shipped encoder's two pre-training stages and its heads
# (issue 12), then the CUDA checks of the serving path (scripts/gpu_check.py, issue 17).
#
#   scripts/gpu_session.sh OUT_DIR BUDGET_S
#
# In a copy of the tree, with the documented commands plus `--device cuda`:
#   1. stage 1, self-supervised and exit-aware (configs/gpu/pretrain.yaml), for SSL_S seconds;
#   2. stage 2, cross-entropy at every exit (configs/gpu/labelled.yaml), for LABELLED_S seconds, exported as
#      the packaged encoder;
#   3. heads at every exit for every task (`xapp heads train`), into the copy's heads/;
# then scripts/gpu_check.py in the tree as it came (the encoder and heads shipped before this run) with
# the time left. Each stage's steps come from its time budget (`--time-budget`: the rate is measured over
# the warm-up and the total written into the run's config.json). Returns, in OUT_DIR:
# encoder.safetensors, encoder-ssl.safetensors, gpu_check.json, session.log and results.tgz (run
# configs and states, loss curves, cards, logs, the heads directory).
#
# The GPU image lacks some of xapp's dependencies; carry them as wheels (python 3.12, x86-64) in .whl
# (ignored: `echo /.whl/ >> .git/info/exclude`), made here with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 \
#     pyzmq==27.3.0 redis==8.1.0 protobuf==7.36.2
# (not numba: llvmlite's wheel alone is 57 MB of the 64 MiB a call may carry; without it the CPU reference
# runs of gpu_check.py compute the side features in torch, which is the reference anyway)
# and the device command for the next lease (carry [".whl", ".session"], with .session a clean
# `git archive HEAD` when the tree is being edited; the machine's start takes ~35 s of the 15 minutes):
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site && cd .session && SSL_S=0 LABELLED_CONFIG=configs/gpu/labelled-stage6.yaml \
#     LABELLED_S=380 HEADS=none CHECK="--budget-s 120" bash scripts/gpu_session.sh $OUT 575
#
# Knobs (environment): SSL_S=0 skips stage 1; LABELLED_CONFIG picks stage 2's config (configs/gpu/labelled-stage5.yaml
# and -stage6.yaml continue the encoder shipped in the tree, copied to runs/encoder-start.safetensors); HEADS=none
# skips the heads (train them on CPU afterwards, with the documented command). Session 7's calls:
# docs/gpu_session/README.md.
#
# Dry run without a GPU:
#   DEVICE=cpu CONFIGS=/tmp/tinycfg SSL_S=15 LABELLED_S=15 CHECK_S=60 \
#     HEADS="--train 300 --val 100 --test 100 --epochs 2" CHECK="--device cpu --quick" scripts/gpu_session.sh /tmp/out 240
set -uo pipefail
out=$(realpath -m "$1") budget=$2
start=$(date +%s)
device=${DEVICE:-cuda}
workers=${DATA_WORKERS:-$(( $(nproc) - 2 ))}
configs=${CONFIGS:-configs/gpu}
ssl_s=${SSL_S:-80} labelled_s=${LABELLED_S:-150} check_s=${CHECK_S:-140}
heads=${HEADS:-"--train 30000 --val 3000 --test 4000 --epochs 8 --batch 1024"}
labelled_config=${LABELLED_CONFIG:-configs/gpu/labelled.yaml}
check=${CHECK:-}
repo=$PWD work=/tmp/session-tree
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$work
mkdir -p "$out"
exec > >(tee -a "$out/session.log") 2>&1
elapsed() { echo $(( $(date +%s) - start )); }
say() { echo "[$(elapsed) s] $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tail -n +2
python3 -c "import torch, numpy, scipy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__)"
rm -rf "$work" && mkdir -p "$work"
tar -C "$repo" --exclude=.git --exclude=.whl --exclude=.venv --exclude=runs -cf - . | tar -C "$work" -xf -
mkdir -p "$work/configs/gpu" && cp "$configs"/*.yaml "$work/configs/gpu/"
cd "$work" || exit 1
mkdir -p runs && cp xapp/assets/encoder.safetensors runs/encoder-start.safetensors \
  && cp xapp/assets/encoder.json runs/encoder-start.json

if [ "$ssl_s" -gt 0 ]; then
  say "stage 1: self-supervised, $ssl_s s, $workers data workers"
  python3 -m xapp.cli pretrain --config configs/gpu/pretrain.yaml --out runs/pretrain --device "$device" \
    --data-workers "$workers" --time-budget "$ssl_s" --export runs/encoder-ssl.safetensors 2>&1 | tr "\r" "\n" | grep -v "pretrain: "
fi
say "stage 2: labelled at every exit ($labelled_config), $labelled_s s, $workers data workers"
python3 -m xapp.cli pretrain --config "$labelled_config" --out runs/labelled --device "$device" \
  --data-workers "$workers" --time-budget "$labelled_s" --export 2>&1 | tr "\r" "\n" | grep -v "pretrain: "
say "stage 2: rc ${PIPESTATUS[0]}"
if [ "$heads" != none ]; then
  heads_s=$(( budget - $(elapsed) - check_s - 20 ))
  say "heads at every exit, at most $heads_s s"
  # shellcheck disable=SC2086
  timeout "$heads_s" python3 -m xapp.cli heads train --out heads --pooling mean,attn --queries 2 --side auto $heads \
    --device "$device" --quiet
  say "heads: rc $?"
fi

check_left=$(( budget - $(elapsed) - 10 ))
say "gpu_check on the tree as it came, at most $check_left s"
# shellcheck disable=SC2086
(cd "$repo" && PYTHONPATH=$repo:$PYTHONPATH timeout "$check_left" python3 scripts/gpu_check.py --json "$out/gpu_check.json" $check \
  > "$out/gpu_check.log" 2>&1; echo "gpu_check rc $?")
tail -n 30 "$out/gpu_check.log"

for run in pretrain labelled; do
  [ -f "runs/$run/state.json" ] || continue
  python3 -c "
import json; s = json.load(open('runs/$run/state.json'))
tail = s['losses'][-50:]
print('$run', s['step'], 'steps', round(s['wall_s']), 's', 'data wait', round(s['data_wait_s']), 's',
      'loss', round(sum(tail) / len(tail), 4), {k: round(sum(v[-50:]) / len(v[-50:]), 3) for k, v in s.get('view_losses', {}).items()})"
done
cp xapp/assets/encoder.safetensors "$out/encoder.safetensors"
[ -f runs/encoder-ssl.safetensors ] && cp runs/encoder-ssl.safetensors "$out/encoder-ssl.safetensors"
trained_heads=heads; [ "$heads" = none ] && trained_heads=  # with HEADS=none, heads/ is the tree's own
# shellcheck disable=SC2046,SC2086
tar -czf "$out/results.tgz" configs $(ls -d runs/*/config.json runs/*/state.json runs/*/loss.png runs/*.json \
  runs/*.md 2>/dev/null) $trained_heads xapp/assets/encoder.json xapp/assets/ENCODER_CARD.md xapp/assets/ENCODER_LOSS.png \
  "$out/gpu_check.log"
say "done"
ls -la "$out"
