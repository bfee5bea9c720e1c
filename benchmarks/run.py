"""Run convtrain's benchmarks, print their markdown tables and save them under benchmarks/results/.

    python -m benchmarks.run                        # everything (tens of minutes on a CPU)
    python -m benchmarks.run --quick                # small sizes, one seed: a smoke run
    python -m benchmarks.run --only overhead,tutorial --threads 1
    make bench

Names: overhead (engine vs bare loop), tutorial (vs the classic DataLoader loop), accuracy (time to
test accuracy with the fast recipes), formats (NCHW vs channels_last on the CPU), peers (convtrain vs
Lightning, the tutorial loop and a bare loop, as whole processes), cache (a PNG folder decoded vs
loaded from the decoded-image cache), many_runs (a 20-trial sweep and 5 seeds against their training time), default_run (a bare
`convtrain train` as whole processes, 3 seeds, plots included), photos (a folder of camera JPEGs read
by the old reader, the new one and torchvision's ImageFolder), epochs_rule (validation accuracy
against epochs on small datasets: the evidence for the auto-epochs rule), small_data (convtrain
bare, which takes the small-data rule, and with the settings before that rule against scikit-learn's SVC, LogisticRegression and
RandomForest on 200-2,000-image subsets of MNIST, Fashion-MNIST and CIFAR-10, and load_digits),
cifar10_jpeg (the development copy's JPEG round trip: train and test on CIFAR-10's bit-exact images
as they are and JPEG'd), cpu_bf16 (bf16 against
fp32 accuracy per epoch on the CPU: the evidence for --precision auto), roofline (each zoo model's
FLOPs per image, images/s and fraction of the measured peak on the CPU), cpu_peak (fastnet-tiny's step against
the same minutes' matmul peak, with each speed-up tried), zoo_subset, zoo and airbench
(GPU only: skipped with a line without CUDA, unless --device cpu asks for the zoo on the CPU).
The saved file is named after the date and the benchmarks run; copy tables into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time

from benchmarks import (
    accuracy,
    cache,
    cifar10_jpeg,
    cpu_bf16,
    cpu_peak,
    default_run,
    epochs_rule,
    formats,
    gpu,
    many_runs,
    overhead,
    peers,
    photos,
    roofline,
    small_data,
    tutorial,
)
from benchmarks.common import CPU_PRECISION, DEVICE_CHOICE, RESULTS, SIZES, describe_machine

BENCHMARKS = {
    "overhead": overhead.run,
    "tutorial": tutorial.run,
    "accuracy": accuracy.run,
    "default_run": default_run.run,
    "formats": formats.run,
    "peers": peers.run,
    "cache": cache.run,
    "many_runs": many_runs.run,
    "zoo_subset": gpu.zoo_subset,
    "photos": photos.run,
    "epochs_rule": epochs_rule.run,
    "small_data": small_data.run,
    "cifar10_jpeg": cifar10_jpeg.run,
    "cpu_bf16": cpu_bf16.run,
    "roofline": roofline.run,
    "cpu_peak": cpu_peak.run,
    "zoo": gpu.zoo,
    "airbench": gpu.airbench,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and one seed")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="with --quick: the smallest sizes, to check that a pass runs and how its parts add up, not to measure",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default); 1 is steadier on a machine shared with other jobs",
    )
    parser.add_argument(
        "--device",
        choices=("all", "cpu", "cuda"),
        default="all",
        help="devices the tutorial and accuracy benchmarks measure (all: the CPU and CUDA if present)",
    )
    parser.add_argument(
        "--cpu-precision",
        choices=("fp32", "auto"),
        default="fp32",
        help="what the accuracy and default_run records train in on a CPU (auto: bf16 on a CPU with bf16 units)",
    )
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma list of: {', '.join(BENCHMARKS)}"
    )
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr
        )
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    DEVICE_CHOICE["which"] = args.device
    CPU_PRECISION["which"] = args.cpu_precision
    SIZES["tiny"] = args.tiny
    command = (
        "python -m benchmarks.run"
        + (" --quick" if args.quick else "")
        + (" --tiny" if args.tiny else "")
        + (f" --device {args.device}" if args.device != "all" else "")
        + (f" --threads {args.threads}" if args.threads else "")
        + (f" --cpu-precision {args.cpu_precision}" if args.cpu_precision != "fp32" else "")
        + f" --only {','.join(names)}"
    )
    sections = [f"## convtrain benchmarks\n\n`{command}`\n\n{describe_machine()}"]
    print(sections[0], flush=True)
    for name in names:
        started = time.perf_counter()
        print(f"\nrunning {name} ...", flush=True)
        text = BENCHMARKS[name](quick=args.quick) + f"\n\n({name}: {time.perf_counter() - started:.0f} s)"
        print("\n" + text, flush=True)
        sections.append(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    path = RESULTS / f"{stamp}-{'-'.join(names)}{'-quick' if args.quick else ''}.md"
    path.write_text("\n\n".join(sections) + "\n")
    print(f"\nsaved {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
