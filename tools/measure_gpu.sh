#!/usr/bin/env bash
# Morph's GPU latency experiments on one NVIDIA GPU, most important first, each under its own
# time limit, so that a short reservation still returns every shape that finished (a stopped
# `morph measure` writes its finished rows and says so in the file's header).
#
#   OUT=results bash tools/measure_gpu.sh
#
# On one H100 the depth sweep takes about 8-9 minutes (both stacks). For a shorter reservation,
# lower the limits, e.g. DEPTH_LIMIT_S=240 WIDTH_LIMIT_S=100 (the values of the shipped H100 run).
#
# Writes to $OUT (default build/gpu): nvidia-smi.csv, gpu-depth.csv, a100-hidden-size.csv.
set -u
out=${OUT:-build/gpu}
python=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,driver_version,memory.total,persistence_mode,clocks.sm,clocks.max.sm,power.limit \
    --format=csv | tee "$out/nvidia-smi.csv"
"$python" -c 'import torch, numpy, scipy, pandas; print("torch", torch.__version__, "cuda", torch.version.cuda,
      "numpy", numpy.__version__, "scipy", scipy.__version__, "pandas", pandas.__version__)'

# 1. On this GPU the captured decode step chooses the tokens eager decoding chooses, and both stacks write a file.
timeout "${CHECK_LIMIT_S:-90}" "$python" -m pytest --noconftest -q -p no:cacheprovider \
    "tests/test_measure.py::test_cuda_measurement"

# 2. Depth at about 1.3B parameters under both stacks: measures the per-layer cost that graph capture leaves.
timeout "${DEPTH_LIMIT_S:-900}" "$python" -m morph measure --sweep gpu-depth --device cuda --stack both \
    --output "$out/gpu-depth.csv"

# 3. Width at depths 4-12 (the paper's A100 hidden_size sweep) under both stacks, in the time that remains.
timeout "${WIDTH_LIMIT_S:-1200}" "$python" -m morph measure --shapes-csv data/latency_sweep_shapes.csv --gpu A100 \
    --sweep hidden_size --device cuda --stack both --output "$out/a100-hidden-size.csv"
exit 0
