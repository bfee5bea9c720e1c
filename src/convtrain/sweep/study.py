"""A sweep: Optuna's study in a storage, worker loops that train one trial at a time, and the outputs.

    convtrain sweep space.yaml --trials 20 --jobs 2
    convtrain sweep space.yaml --storage postgresql+psycopg2://user@db/sweeps --study lenet  # each machine
    convtrain sweep --resume sweeps/space                                                    # after a crash

A trial is an ordinary run folder (trials/trial-NNNN). The loop is Optuna's ask/tell: a worker asks
for a trial only while finished + running trials are fewer than the target, so any number of
workers on any number of machines stop together at exactly that count. Each epoch's validation
metric goes to trial.report through training.fit's on_epoch, where the pruner may stop the trial.
"""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from convtrain.base.atomic_files import write_text_atomic
from convtrain.base.errors import ConfigError, ConvtrainError
from convtrain.data.memory_cache import keep_datasets
from convtrain.runs.run_dir import RunDir, numbered
from convtrain.sweep.folders import SweepDir
from convtrain.sweep.space import SweepSpec, parse_spec, read_spec
from convtrain.sweep.storage import ask_lock, hide_password, open_storage, open_study, require_optuna
from convtrain.sweep.sweep_outputs import write_outputs
from convtrain.sweep.workers import silenced, start_workers, worker_device
from convtrain.training.epochs_and_size import DEFAULT_EPOCHS
from convtrain.training.loop import NonFiniteLoss, fit


def run_sweep(
    space: str | Path | None = None,
    *,
    trials: int | None = None,
    jobs: int = 1,
    storage: str | None = None,
    study: str | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
) -> SweepDir:
    """Run a sweep file (or continue the sweep folder `resume`) to `trials` trials; returns its folder,
    with trials.csv, best.yaml and report.html written. The same as `convtrain sweep`."""
    require_optuna()
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    if resume and space:
        raise ConfigError("give a sweep file or --resume DIR, not both (the folder holds its sweep file)")
    spec, folder, storage, study = prepare(
        str(space) if space else None, out and str(out), resume and str(resume), storage, study, trials
    )
    run_study(spec, folder, storage, study, jobs)
    return folder


def prepare(
    space: str | None,
    out: str | None,
    resume: str | None,
    storage: str | None,
    study: str | None,
    trials: int | None,
) -> tuple[SweepSpec, SweepDir, str, str]:
    """(spec, folder, storage URL, study name) from a sweep file or a sweep folder, checked."""
    if resume:
        folder = SweepDir(resume)
        if not folder.spec_path.is_file():
            raise ConfigError(
                f"cannot resume {resume}: it has no sweep.yaml; pass a folder `convtrain sweep` made"
            )
        saved = yaml.safe_load(folder.spec_path.read_text())
        spec = parse_spec(saved["spec"], str(folder.spec_path))
        storage, study = storage or saved["storage"], study or saved["study"]
    else:
        if not space:
            raise ConfigError("give a sweep file (convtrain sweep SPACE.yaml) or --resume DIR")
        spec = read_spec(space)
        name = Path(space).stem
        folder = SweepDir(out) if out else SweepDir(numbered(Path("sweeps") / name))
        storage, study = storage or folder.default_storage(), study or name
        if folder.spec_path.is_file():  # another worker of the same sweep, or a mistake
            saved = yaml.safe_load(folder.spec_path.read_text())
            if (
                saved.get("study") != study
                or parse_spec(saved["spec"], "").fingerprint() != spec.fingerprint()
            ):
                raise ConfigError(
                    f"{folder.path} holds another sweep; pick another --out, or --resume {folder.path}"
                )
    if trials is not None:
        if trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {trials}")
        spec = SweepSpec(**{**spec.__dict__, "trials": trials})
    if spec.sampler == "grid":  # past the last grid point Optuna would repeat points: stop there
        points = math.prod(len(values) for values in spec.grid_space().values())
        spec = SweepSpec(**{**spec.__dict__, "trials": min(spec.trials, points)})
    return spec, folder, storage, study


def run_study(spec: SweepSpec, folder: SweepDir, storage_url: str, name: str, jobs: int = 1) -> Path:
    """Run trials until the study holds spec.trials finished or running ones; `jobs` workers here."""
    folder.path.mkdir(parents=True, exist_ok=True)
    storage = open_storage(storage_url)
    study = open_study(spec, storage, name)  # checked once here, before any worker starts
    write_text_atomic(
        folder.spec_path,
        yaml.safe_dump({"storage": storage_url, "study": name, "spec": spec.to_dict()}, sort_keys=False),
    )
    print(
        f"sweep {name}: {spec.trials} trials of {spec.objective} ({spec.direction}), {spec.sampler} sampler, "
        f"pruner {spec.pruner['name']}, {jobs} worker(s); storage {hide_password(storage_url)}; folder {folder.path}",
        flush=True,
    )
    with ask_lock(storage_url):  # once per command, before its workers: no trial is retried twice
        recover_interrupted(study)
    if jobs == 1:
        with keep_datasets():
            work(0, spec, folder, storage_url, name, study)
    else:
        workers = start_workers(jobs, work, spec, folder, storage_url, name)
        for worker in workers:
            worker.join()
        failed = [w.exitcode for w in workers if w.exitcode]
        if failed:
            raise ConvtrainError(
                f"{len(failed)} sweep worker(s) stopped with an error (exit codes {failed}); see above"
            )
    return write_outputs(folder, spec, open_study(spec, storage, name))


def work(index: int, spec: SweepSpec, folder: SweepDir, storage_url: str, name: str, study=None) -> None:
    """One worker: ask, train and tell until the study holds spec.trials trials."""
    optuna = require_optuna()
    study = study or open_study(spec, open_storage(storage_url), name)
    while (trial := _next_trial(study, spec.trials, storage_url)) is not None:
        params = {p.name: p.suggest(trial) for p in spec.space}
        run = folder.trial_run(trial.number)
        trial.set_user_attr("run", str(run.path))
        started = time.perf_counter()
        try:
            value, state = _train_trial(spec, trial, params, str(run.path), index, optuna), "COMPLETE"
            study.tell(trial, value)
        except optuna.TrialPruned:
            state = "PRUNED"
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        except KeyboardInterrupt:
            _fail_and_retry(study, trial.number, params, "interrupted")
            raise
        except NonFiniteLoss:  # a diverging corner of the space is an outcome: counted, not retried
            trial.set_user_attr("diverged", True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            state = "DIVERGED"
        except Exception:  # anything else (a dataset gone, a folder taken, a bug) stops this worker
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        print(_trial_line(study, trial.number, state, params, time.perf_counter() - started), flush=True)


def _train_trial(spec: SweepSpec, trial, params: dict[str, Any], out: str, index: int, optuna) -> float:
    config = worker_device(spec.trial_config(params, out), index)

    def report(row: dict[str, Any]) -> None:  # training.fit calls this after each epoch is saved
        epoch = int(row["epoch"])
        trial.report(row[spec.objective], step=epoch)
        # after the last epoch there is nothing left to save: the trial completes, with a real value
        if epoch < (config.epochs or DEFAULT_EPOCHS) and trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    with silenced():
        try:
            run = fit(config, on_epoch=report)
        finally:
            _remember_run(trial, out)
    if run.results.get("interrupted"):
        raise KeyboardInterrupt
    values = [row[spec.objective] for row in run.history if row[spec.objective] == row[spec.objective]]
    if not values:
        raise ConvtrainError(f"trial {trial.number} measured no {spec.objective}")
    return max(values) if spec.direction == "maximize" else min(values)


def _remember_run(trial, out: str) -> None:

    run = RunDir(out)
    history, results = run.history, run.results
    trial.set_user_attr("epochs", len(history))
    trial.set_user_attr("training_seconds", sum(row["seconds"] for row in history))
    if "test_acc" in results:
        trial.set_user_attr("test_acc", results["test_acc"])


def _next_trial(study, target: int, storage_url: str):
    """A new trial, or None once finished + running trials reach the target. With a file storage the
    count and the ask happen under one lock, so workers never overshoot; with a database server a
    trial asked in the same instant as another's is told FAIL (marked surplus) before it trains."""
    from optuna.trial import TrialState

    with ask_lock(storage_url):
        if sum(map(_counts, study.get_trials(deepcopy=False))) >= target:
            return None
        trial = study.ask()
    ahead = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number and _counts(t)]
    if len(ahead) >= target:
        trial.set_user_attr("surplus", True)
        study.tell(trial, state=TrialState.FAIL)
        return None
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    return trial


def _counts(trial) -> bool:
    """Whether a trial counts toward --trials: finished, pruned, running, or failed by diverging."""
    state = trial.state.name
    return state in ("COMPLETE", "PRUNED", "RUNNING") or (
        state == "FAIL" and bool(trial.user_attrs.get("diverged"))
    )


def recover_interrupted(study) -> list[int]:
    """RUNNING trials of this host whose process is gone (killed, crashed) are told FAIL and their
    parameters queued again, so the next ask retries them. Returns their numbers."""
    from optuna.trial import TrialState

    host, recovered = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("host") == host and not _alive(trial.user_attrs.get("pid")):
            _fail_and_retry(study, trial.number, trial.params, "its worker process is gone")
            recovered.append(trial.number)
    return recovered


def _fail_and_retry(study, number: int, params: dict[str, Any], why: str) -> None:
    from optuna.trial import TrialState

    study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    study.enqueue_trial(params, user_attrs={"retry_of": number})
    print(f"trial {number} marked failed ({why}); its parameters will be tried again", flush=True)


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True  # not ours to check: leave it running
    return True


def _trial_line(study, number: int, state: str, params: dict[str, Any], seconds: float) -> str:
    trial = study.get_trials(deepcopy=False)[number]
    shown = "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    if state == "DIVERGED":
        what = "failed: the loss became non-finite"
    elif state == "PRUNED":
        steps = sorted(trial.intermediate_values)
        what = f"pruned after epoch {steps[-1]}" if steps else "pruned"
    else:
        what = f"value {trial.value:.4f}"
    try:
        best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        best = "best -"
    done = sum(_counts(t) and t.state.name != "RUNNING" for t in study.get_trials(deepcopy=False))
    return f"trial {number}  {what}  {shown}  {seconds:.1f}s  {best}  [{done} done]"
