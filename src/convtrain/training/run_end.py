"""The end of a run: the test pass with the tested weights, results.json with the phase timings and
the run's arithmetic (FLOP/s and the fraction of the machine's peak), then the pictures and report.

    python -c "import convtrain; print(convtrain.train(epochs=1).results['timings'])"
"""

from __future__ import annotations

from typing import Any

import torch

from convtrain.data.dataset_registry import resolve_data_dir
from convtrain.evaluation.scoring import Scored, mirrors, score_loader
from convtrain.system import distributed
from convtrain.system.flop_counts import arithmetic_summary, training_flops_per_image
from convtrain.training.setup import Job


def finish(
    job: Job,
    history: list[dict[str, Any]],
    tested_weights: dict | None,
    training_seconds: float,
    stop_reason: str,
    before: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Evaluate the tested weights (best.pt, or last.pt's with test_weights: last) on the test split,
    write results.json, and make the pictures and report."""
    checkpoint = f"{job.config.test_weights}.pt"
    results: dict[str, Any] = {
        "epochs": len(history),
        "training_seconds": training_seconds,
        "stop_reason": stop_reason or "finished",
        **(before or {}),
    }
    if history:
        results.update({f"final_{k}": v for k, v in history[-1].items() if k != "epoch"})
    scored = None  # the test pass's logits, when the report can draw from them as they are
    if job.test_loader is not None and tested_weights is not None:
        with job.timings.measure("test"):
            job.model.load_state_dict(tested_weights)
            config = job.config
            mirror = mirrors(config.augment)  # TTA mirrors only a model that trained on flips
            kept = [] if _report_reuses_test(job) else None
            test = score_loader(
                job.model, job.test_loader, job.num_classes, config.precision, config.tta, mirror, kept
            )
            if kept is not None:
                logits, labels = (torch.cat(parts) for parts in zip(*kept, strict=True))
                scored = Scored(job.run, "test", checkpoint, job.data, job.data.test, logits, labels)
        results.update(
            {
                "test_loss": test["loss"],
                "test_acc": test["accuracy"],
                "test_images": test["count"],
                "test_weights": checkpoint,
            }
        )
        job.log(
            f"test: loss {test['loss']:.4f}  accuracy {100 * test['accuracy']:.2f}% on {test['count']} images ({checkpoint})"
        )
    elif not job.config.test:
        results["test_unread"] = True
        job.log(
            f"test split left unread (--no-test); when settings are chosen: convtrain evaluate {job.run.path} --split test"
        )
    if distributed.is_main():
        with job.timings.measure("arithmetic"):
            arithmetic = run_arithmetic(job, history)
        results["timings"] = job.timings.as_dict() | arithmetic
        job.run.write_results(results)
        if job.config.plots:
            with job.timings.measure("pictures"):
                job.make_pictures(scored)
            results["timings"] = job.timings.as_dict() | arithmetic
            job.run.write_results(results)  # again, now with the pictures' time
    return results


def run_arithmetic(job: Job, history: list[dict[str, Any]]) -> dict[str, float]:
    """FLOPs per training image, the FLOP/s the training epochs reached (this process's images/s)
    and the fraction of the machine's measured peak in the run's precision (system/flop_counts.py)."""
    seconds = sum(row["seconds"] for row in history)
    if not history or seconds <= 0:
        return {}
    images = sum(row["images_per_second"] * row["seconds"] for row in history)
    shape = (job.data.channels, job.data.image_size, job.data.image_size)
    device = next(job.model.parameters()).device  # where the network is (the job's device)
    flops = training_flops_per_image(job.model, shape, device)
    cache = resolve_data_dir(job.config.data_dir)
    return arithmetic_summary(flops, images / seconds, device, job.config.precision, cache)


def _report_reuses_test(job: Job) -> bool:
    """Whether the final test pass's logits are the ones the report would compute (one process, fp32,
    no TTA, the images in memory), so that the report need not pass over the test split again."""
    config = job.config
    single = distributed.world()[2] == 1
    in_memory = job.data.test is not None and job.data.test.images is not None
    return config.plots and single and config.precision == "fp32" and not config.tta and in_memory
