#!/usr/bin/env bash
# One batched pass over everything that needs a GPU: the gpu-marked tests, then the GPU benchmarks
# (zoo throughput, cifar10-fast vs airbench94, tutorial loop and time to accuracy on CUDA), then the
# label check of MNIST test against its confirmed label errors.
# Writes its logs and tables under $OUT (default benchmarks/results/gpu-pass). It installs nothing:
# it expects torch, pytest, matplotlib, pyyaml and tqdm to be there, as on a CUDA machine with a
# PyTorch image, and reads convtrain from src/.
#
#   bash benchmarks/gpu_pass.sh                       # on a GPU machine, from the repository root
#   bash benchmarks/gpu_pass.sh --quick               # smaller sizes, a smoke pass
#
# The airbench94 comparison needs its public script at external/airbench94.py (git-ignored; see
# benchmarks/gpu.py); without it that table says it was skipped and the rest still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu-pass}"
mkdir -p "$OUT"
export PYTHONPATH="src:.${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

python3 - <<'EOF' | tee "$OUT/machine.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda)
print("gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
EOF
python3 -m pytest -q -p no:cacheprovider -m gpu tests 2>&1 | tee "$OUT/gpu-tests.log"
python3 -m benchmarks.run "$@" --device cuda --only zoo,airbench,tutorial,accuracy 2>&1 | tee "$OUT/benchmarks.log"
cp "$(ls -t benchmarks/results/*.md | head -1)" "$OUT/tables.md"
# The label check on MNIST test (models trained on train score test; seconds on a GPU), measured
# against the 15 label errors people confirmed (benchmarks/datacheck_confirmed.py).
python3 -m convtrain data check mnist --split test --labels --device cuda --out "$OUT/check-mnist-test" \
  > "$OUT/check-mnist-test.log" 2>&1 \
  && python3 -m benchmarks.datacheck_confirmed measure "$OUT/check-mnist-test" 2>&1 | tee "$OUT/check-mnist-confirmed.txt"
