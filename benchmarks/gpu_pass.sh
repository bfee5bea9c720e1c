#!/usr/bin/env bash
# The GPU pass: everything that needs a GPU, in sections that each write their results under $OUT as
# soon as they finish, so a pass cut short by its time limit still leaves every finished section.
#
#   bash benchmarks/gpu_pass.sh --quick            # at most 6 minutes: the order to run first
#   bash benchmarks/gpu_pass.sh                    # everything, full sizes (several 10-minute windows)
#   bash benchmarks/gpu_pass.sh --only zoo,ddp     # some sections
#   bash benchmarks/gpu_pass.sh --quick --device cpu --tiny   # on a CPU: checks the pass runs, and its length
#
# Sections, in order (each under `timeout` with its own budget; --quick budgets add up to 330 s):
#   machine     GPU, driver, torch and CUDA versions
#   tests       the gpu-marked tests (tests/system/test_gpu.py and others); wheels/ extras installed first if present
#   zoo_subset  zoo throughput for fastnet-tiny and resnet9 (fp32, bf16 + channels_last, + compile), row by row
#   airbench    cifar10-fast against the public airbench94 script (needs external/airbench94.py)
#   mnist       time to accuracy on real MNIST with the fast recipes (needs the datasets beside the checkout)
#   tutorial    against the classic tutorial DataLoader loop
#   ddp         --nproc over every GPU, or on one GPU the one-line refusal of a second process
#   zoo         the whole zoo (full pass only)
# Each writes $OUT/<section>.log (everything printed) and, for benchmarks, $OUT/<section>.md (its
# table, with the measurement convention beside it); $OUT/sections.txt gets one line per section:
# name, exit status, seconds. What to carry: external/ (airbench), the real datasets
# (../shared/datasets or $CONVTRAIN_DATA), and wheels/ with Captum and Optuna wheels for the
# explain and sweep GPU tests (otherwise those skip, and the log says so).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu-pass}"
mkdir -p "$OUT"
export PYTHONPATH="src:.${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTHON="${PYTHON:-python3}"

QUICK="" TINY="" DEVICE="cuda" ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK="--quick" ;;
    --tiny) TINY="--tiny" ;;
    --device) DEVICE="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    *) echo "gpu_pass.sh: unknown option $1 (use --quick, --tiny, --device cuda|cpu, --only a,b)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$QUICK" ]; then
  SECTIONS="machine tests zoo_subset airbench mnist tutorial ddp"
else
  SECTIONS="machine tests zoo_subset airbench mnist tutorial ddp labels zoo"
fi
[ -n "$ONLY" ] && SECTIONS="${ONLY//,/ }"
export OUT PYTHON QUICK TINY DEVICE

# seconds each section may take: --quick (they add up to 330 s, 6 minutes with every kill grace), then
# the full pass. On a CPU (--device cpu) each budget is multiplied by $CPU_BUDGET_FACTOR (default 6).
budget() {
  local seconds
  case "$1" in
    machine) seconds=15 ;;
    tests) [ -n "$QUICK" ] && seconds=75 || seconds=600 ;;
    zoo_subset) [ -n "$QUICK" ] && seconds=75 || seconds=300 ;;
    airbench) [ -n "$QUICK" ] && seconds=75 || seconds=600 ;;
    mnist) [ -n "$QUICK" ] && seconds=30 || seconds=600 ;;
    tutorial) [ -n "$QUICK" ] && seconds=30 || seconds=600 ;;
    ddp) seconds=30 ;;
    labels) seconds=300 ;;
    zoo) seconds=1800 ;;
  esac
  [ "$DEVICE" = cpu ] && seconds=$(( seconds * ${CPU_BUDGET_FACTOR:-6} ))
  echo "$seconds"
}

bench() {  # one benchmarks.run name; its table goes to $OUT/<section>.md
  local section="$1" name="$2" log="$OUT/$1.log"
  "$PYTHON" -m benchmarks.run $QUICK $TINY --device "$DEVICE" --only "$name" 2>&1 | tee "$log"
  local saved
  saved="$(sed -n 's/^saved //p' "$log" | tail -1)"
  [ -n "$saved" ] && cp "$saved" "$OUT/$section.md"
}

run_section() {
  case "$1" in
    machine)
      { nvidia-smi 2>/dev/null || echo "no nvidia-smi"
        "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version()); print("gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")'
      } 2>&1 | tee "$OUT/machine.log" ;;
    tests)
      if [ -d wheels ]; then "$PYTHON" -m pip install -q --no-index --find-links wheels captum optuna 2>&1 | tail -2; fi
      "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu -rs tests 2>&1 | tee "$OUT/tests.log" ;;
    zoo_subset) bench zoo_subset zoo_subset ;;
    airbench) bench airbench airbench ;;
    mnist) bench mnist accuracy ;;
    tutorial) bench tutorial tutorial ;;
    zoo) bench zoo zoo ;;
    labels)  # the label check of MNIST test (a model trained on train scores test), then measured
      # against the 15 label errors people confirmed (benchmarks/datacheck_confirmed.py)
      "$PYTHON" -m convtrain data check mnist --split test --labels --device "$DEVICE" \
        --out "$OUT/check-mnist-test" 2>&1 | tee "$OUT/labels.log" \
        && "$PYTHON" -m benchmarks.datacheck_confirmed measure "$OUT/check-mnist-test" 2>&1 | tee "$OUT/labels.md" ;;
    ddp)
      "$PYTHON" - "$DEVICE" <<'PYEOF' 2>&1 | tee "$OUT/ddp.log"
import subprocess, sys, tempfile, numpy as np, torch
device = sys.argv[1]
gpus = torch.cuda.device_count() if device == "cuda" else 0
nproc = gpus if gpus >= 2 else 2
with tempfile.TemporaryDirectory() as tmp:
    rng = np.random.default_rng(0)  # synthetic 28x28 digits-shaped data: no dataset to carry
    x, y = rng.integers(0, 256, (4096, 28, 28), dtype=np.uint8), rng.integers(0, 10, 4096)
    np.savez(f"{tmp}/d.npz", x_train=x, y_train=y, x_test=x[:512], y_test=y[:512])
    base = [sys.executable, "-m", "convtrain", "train", "--dataset", f"npz:{tmp}/d.npz", "--model", "lenet5",
            "--epochs", "1", "--batch-size", "256", "--no-plots", "--quiet", "--device", device]
    done = subprocess.run([*base, "--nproc", str(nproc), "--out", f"{tmp}/run"], capture_output=True, text=True)
    said = [line for line in (done.stdout + done.stderr).splitlines() if "distributed/run.py" not in line and "****" not in line]
    last = said[-3:]
    print(f"--nproc {nproc} on {gpus} GPU(s), device {device}: exit {done.returncode}")
    print("\n".join(last))
    if device == "cuda" and gpus < 2:  # one GPU: the second process is refused in one line, not a traceback
        print("expected: a one-line refusal (exit 1 from torchrun, rank 1's line above), no 'invalid device ordinal'")
PYEOF
      ;;
    *) echo "unknown section $1" >&2; return 2 ;;
  esac
}

echo "gpu pass: $SECTIONS ($([ -n "$QUICK" ] && echo quick || echo full), device $DEVICE) -> $OUT" | tee "$OUT/sections.txt"
for section in $SECTIONS; do
  started=$(date +%s)
  # each section in its own shell under `timeout`, so one that hangs cannot take the rest of the window
  timeout --kill-after=4 "$(budget "$section")" bash -c "$(declare -f budget bench run_section); run_section $section" \
    && status=0 || status=$?
  echo "$section exit $status $(( $(date +%s) - started ))s" | tee -a "$OUT/sections.txt"
done
