#!/usr/bin/env bash
# GPU throughput of the paper preset (ViT-B-16, 224 px, bf16 autocast, random init) on one GPU, in one
# run of speed/bench_train_step.py (< 5 minutes on one H100/H200): batch 32 (the paper's) and 256,
# ours with the throughput switches on against ours with them off ("baseline") and a bare open_clip
# step ("bare"), FLOPs per step and model FLOPs utilisation against the bf16 dense peak.
#   bash speed/bench_train_gpu.sh [extra overrides]   ->  speed/results/train_step-paper-cuda.json
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python
exec "$PYTHON" speed/bench_train_step.py --config paper --device cuda --batch-sizes 32,256 \
  --steps 10 --rounds 3 --flops --out speed/results/train_step-paper-cuda.json \
  --baseline "train.vision_forward=open_clip train.compile=false optim.adamw=auto train.tf32=false" \
  loader.image_cache=memory loader.num_workers=0 train.precision=bf16 \
  train.vision_forward=lean train.compile=true optim.adamw=fused train.tf32=true "$@"
