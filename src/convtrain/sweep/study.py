"""A sweep: Optuna's study in a storage, worker loops that train one trial at a time, and the outputs.

    convtrain sweep space.yaml --trials 20 --jobs 2
    convtrain sweep space.yaml --storage postgresql://user@db/sweeps --study lenet   # on every machine
    convtrain sweep --resume sweeps/space                                            # after a crash

A trial is an ordinary run folder (trials/trial-NNNN). The loop is Optuna's ask/tell: a worker asks
for a trial only while finished + running trials are fewer than the target, so any number of
workers on any number of machines stop together at exactly that count. Each epoch's validation
metric goes to trial.report through training.fit's on_epoch, where the pruner may stop the trial.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from convtrain.errors import ConfigError, ConvtrainError, reason
from convtrain.files import write_text_atomic
from convtrain.sweep.folders import SweepDir, numbered
from convtrain.sweep.space import SweepSpec, parse_spec, read_spec
from convtrain.sweep.workers import silenced, start_workers, worker_device
from convtrain.training import NonFiniteLoss, fit

SPACE_ATTR = "convtrain_space"  # the study's user attribute that holds SweepSpec.fingerprint()


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise ConvtrainError("sweeps need Optuna: pip install 'convtrain[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from here instead
    return optuna


# ----- settings: a new sweep, or one read back from its folder -----
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
    return spec, folder, storage, study


def open_storage(url: str):
    """An Optuna storage for a database URL or journal:PATH; an unreachable one is a ConfigError naming it."""
    optuna = require_optuna()
    if url.startswith("journal:"):
        path = Path(url[len("journal:") :]).expanduser()
        if not path.parent.is_dir():
            raise ConfigError(f"storage {url}: folder {path.parent} does not exist")
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise ConfigError(
            f"storage {url!r} is neither a database URL (sqlite:///x.db, postgresql://...) nor journal:PATH"
        )
    shown = _hide_password(url)
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except ImportError as error:
        raise ConfigError(
            f"storage {shown}: its database driver is not installed ({reason(error)})"
        ) from None
    except Exception as error:  # SQLAlchemy's OperationalError and friends: the server is not there
        raise ConfigError(f"cannot reach storage {shown}: {reason(error)[:200]}") from None


def _hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def open_study(spec: SweepSpec, storage, name: str):
    """Create the study, or join it: an existing study with another space or objective is refused."""
    optuna = require_optuna()
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=spec.direction,
        load_if_exists=True,
        sampler=_sampler(spec, optuna),
        pruner=_pruner(spec, optuna),
    )
    saved = study.user_attrs.get(SPACE_ATTR)
    if saved is None and not study.trials:
        study.set_user_attr(SPACE_ATTR, spec.fingerprint())
    elif saved != spec.fingerprint() or study.direction.name.lower() != spec.direction:
        raise ConfigError(f"study {name!r} already exists with another search space; pick another --study")
    return study


def _sampler(spec: SweepSpec, optuna):
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(spec.grid_space(), seed=spec.seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed + os.getpid())  # workers must not draw alike
    return optuna.samplers.TPESampler(seed=spec.seed + os.getpid())


def _pruner(spec: SweepSpec, optuna):
    p = spec.pruner
    if p["name"] == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.get("startup_trials", 5), n_warmup_steps=p.get("warmup_epochs", 0)
        )
    if p["name"] == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.get("min_epochs", 1), reduction_factor=p.get("reduction_factor", 3)
        )
    return optuna.pruners.NopPruner()


# ----- the worker loop -----
def run_sweep(spec: SweepSpec, folder: SweepDir, storage_url: str, name: str, jobs: int = 1):
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
        f"pruner {spec.pruner['name']}, {jobs} worker(s); storage {_hide_password(storage_url)}; folder {folder.path}",
        flush=True,
    )
    if jobs == 1:
        from convtrain.data.cache import keep_datasets

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
    """One worker: retry this host's interrupted trials, then ask, train and tell until the count is reached."""
    optuna = require_optuna()
    study = study or open_study(spec, open_storage(storage_url), name)
    recover_interrupted(study)
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
    def report(row: dict[str, Any]) -> None:  # training.fit calls this after each epoch is saved
        trial.report(row[spec.objective], step=int(row["epoch"]))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {int(row['epoch'])}")

    config = worker_device(spec.trial_config(params, out), index)
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
    from convtrain.rundir import RunDir

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

    with _ask_lock(storage_url):
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


@contextmanager
def _ask_lock(storage_url: str):
    """An exclusive flock beside an SQLite or journal file; a no-op for database servers."""
    path = None
    if storage_url.startswith("sqlite:///"):
        path = Path(storage_url[len("sqlite:///") :])
    elif storage_url.startswith("journal:"):
        path = Path(storage_url[len("journal:") :]).expanduser()
    if path is None or str(path) in ("", ":memory:"):
        yield
        return
    with open(f"{path}.asklock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


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


# ----- outputs -----
def trial_rows(study) -> list[dict[str, Any]]:
    """One dict per trial (surplus ones left out), as trials.csv holds them."""
    names = sorted({k for t in study.trials for k in t.params})
    rows = []
    for t in study.trials:
        if t.user_attrs.get("surplus"):
            continue
        attrs = t.user_attrs
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value if t.value is not None else "",
                **{f"param_{n}": t.params.get(n, "") for n in names},
                "epochs": attrs.get("epochs", ""),
                "training_seconds": attrs.get("training_seconds", ""),
                "test_acc": attrs.get("test_acc", ""),
                "retry_of": attrs.get("retry_of", ""),
                "run": attrs.get("run", ""),
                "worker": f"{attrs.get('host', '')}:{attrs.get('pid', '')}",
            }
        )
    return rows


def write_outputs(folder: SweepDir, spec: SweepSpec | None = None, study=None) -> Path:
    """trials.csv, best.yaml and report.html from the study; returns the report's path."""
    if spec is None or study is None:
        saved = yaml.safe_load(folder.spec_path.read_text())
        spec = parse_spec(saved["spec"], str(folder.spec_path))
        study = open_study(spec, open_storage(saved["storage"]), saved["study"])
    rows = trial_rows(study)
    if rows:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()} for r in rows)
        write_text_atomic(folder.trials_csv_path, buffer.getvalue())
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if complete:
        best = study.best_trial
        options = {k: v for k, v in spec.base.items() if k not in ("quiet", "plots")}
        options.update(best.params)
        header = (
            f"# best trial {best.number} of sweep {study.study_name}: {spec.objective} {best.value:.6g}\n"
            f"# re-train with: convtrain train --config {folder.best_path}\n"
        )
        write_text_atomic(folder.best_path, header + yaml.safe_dump(options, sort_keys=False))
    from convtrain.sweep.report import write_sweep_report

    return write_sweep_report(folder, study, rows, spec.objective)
