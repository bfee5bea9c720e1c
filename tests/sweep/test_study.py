"""Sweeps on real Optuna storage: two worker processes on one SQLite study, on one journal file and on
a PostgreSQL server started by the test, a worker killed in mid-trial and resumed, pruning, and bad
sweep files refused before any trial."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from convtrain.cli import main
from convtrain.config.train_config import TrainConfig, read_yaml
from convtrain.sweep.folders import SweepDir
from convtrain.sweep.sweep_outputs import write_outputs

optuna = pytest.importorskip("optuna")


def write_space(path: Path, npz: Path, epochs: int = 1, limit_train: int = 0, **extra) -> Path:
    base = {"dataset": f"npz:{npz}", "model": "lenet5", "batch_size": 64, "epochs": epochs}
    spec = {
        "base": {**base, "limit_train": limit_train},
        "space": {
            "lr": {"type": "log-float", "low": 0.005, "high": 0.1},
            "weight_decay": {"type": "float", "low": 0.0, "high": 0.001},
        },
        **extra,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def worker(space: Path, *args: str) -> subprocess.Popen:
    """A second worker: the real command in its own process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "convtrain", "sweep", str(space), *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"worker ended before {path} appeared:\n{process.stdout.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def load(folder: Path):
    saved = yaml.safe_load((folder / "sweep.yaml").read_text())
    from convtrain.sweep.storage import open_storage

    return optuna.load_study(study_name=saved["study"], storage=open_storage(saved["storage"]))


def check_six_trials_once(folder: Path, study, surplus_allowed: bool = False) -> list:
    """Six trials, each trained once to the end into its own folder, by both workers; returns them.

    With a database server there is no file lock around the ask, so a trial asked in the same instant
    as the sixth is told FAIL as surplus before it trains (study._next_trial): allowed only there."""
    trials = study.trials
    if surplus_allowed:
        surplus = [t for t in trials if t.user_attrs.get("surplus")]
        assert all(t.state.name == "FAIL" and "run" not in t.user_attrs for t in surplus), surplus
        trials = [t for t in trials if not t.user_attrs.get("surplus")]
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6, [t.state.name for t in study.trials]
    workers = {t.user_attrs["pid"] for t in trials}
    assert len(workers) == 2, "both workers should have trained trials"
    for t in trials:  # every trial trained once, into its own folder, to the end
        run = folder / "trials" / f"trial-{t.number:04d}"
        assert t.user_attrs["run"] == str(run)
        assert len((run / "metrics.csv").read_text().splitlines()) == 2  # header + one epoch
        assert (run / "results.json").is_file()
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6
    folders = sorted(p.name for p in (folder / "trials").iterdir())
    assert folders == [f"trial-{t.number:04d}" for t in trials]  # no folder of a trial that did not train
    return trials


def two_workers(tmp_path: Path, tiny_npz: Path, storage: list[str]) -> Path:
    space = write_space(tmp_path / "space.yaml", tiny_npz, limit_train=128)  # two steps a trial
    folder = tmp_path / "sweep"
    args = ["--trials", "6", "--out", str(folder), *storage]
    other = worker(space, *args)
    wait_for(folder / "trials" / "trial-0000", other)  # the other worker is training: join it now
    assert main(["sweep", str(space), *args]) == 0
    output, _ = other.communicate(timeout=300)
    assert other.returncode == 0, output
    return folder


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(tiny_npz, tmp_path, capsys):
    folder = two_workers(tmp_path, tiny_npz, [])
    study = load(folder)
    check_six_trials_once(folder, study)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("trial ")]
    assert lines and all(" best " in line for line in lines)  # one line per trial, with the best so far

    rows = (folder / "trials.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("number,state,value,param_lr,param_weight_decay")
    best = TrainConfig.from_dict(read_yaml(folder / "best.yaml"))  # re-trainable with --config
    assert best.lr == pytest.approx(study.best_trial.params["lr"]) and best.epochs == 1
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "Optimisation history" in page


@pytest.mark.slow
def test_two_workers_share_one_journal_file(tiny_npz, tmp_path):
    journal = tmp_path / "study.journal"
    folder = two_workers(tmp_path, tiny_npz, ["--storage", f"journal:{journal}", "--study", "shared"])
    assert journal.is_file() and not (folder / "study.db").exists()
    check_six_trials_once(folder, load(folder))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL 16 server of the test's own, from the pgserver wheel: initdb in a new temporary
    folder, the server on a Unix socket there (no TCP port), stopped and the folder deleted afterwards.

    PostgreSQL refuses to run as root. Run as root (CI, containers), pgserver runs initdb and the server
    as a system user `pgserver`, which it adds once with `useradd` (no network, no prompt), and gives
    that user read and traverse rights on the folders above its data folder: hence a folder of its own
    under the temporary directory rather than pytest's tmp_path, whose parents stay private."""
    pgserver = pytest.importorskip(
        "pgserver", reason="the PostgreSQL test server is not installed: pip install 'convtrain[postgres]'"
    )
    data = tempfile.mkdtemp(prefix="convtrain-postgres-")
    try:
        with pgserver.get_server(data, cleanup_mode="delete") as server:
            # postgresql+psycopg2: SQLAlchemy 2.1's plain postgresql:// means psycopg 3, not the extra's driver
            yield server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
    finally:
        shutil.rmtree(data, ignore_errors=True)  # when the server did not start, pgserver leaves it


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(tiny_npz, tmp_path, postgres_url):
    folder = two_workers(tmp_path, tiny_npz, ["--storage", postgres_url, "--study", "shared"])
    assert not (folder / "study.db").exists()
    saved = yaml.safe_load((folder / "sweep.yaml").read_text())
    assert saved["storage"] == postgres_url and saved["study"] == "shared"  # --resume finds the server
    study = load(folder)
    trials = check_six_trials_once(folder, study, surplus_allowed=True)

    # The outputs, made again from the study now that both workers are done: each worker writes them
    # as it stops, so the first to stop may have read the study while the other's last trial ran.
    write_outputs(SweepDir(folder))
    rows = list(csv.DictReader((folder / "trials.csv").read_text().splitlines()))
    assert [(int(r["number"]), r["state"]) for r in rows] == [(t.number, "COMPLETE") for t in trials]
    best = TrainConfig.from_dict(read_yaml(folder / "best.yaml"))
    assert study.best_trial.number in [t.number for t in trials]
    assert best.lr == pytest.approx(study.best_trial.params["lr"])


@pytest.mark.slow
def test_a_killed_worker_is_resumed_to_the_requested_count(tiny_npz, tmp_path):
    space = write_space(tmp_path / "space.yaml", tiny_npz, epochs=3)
    folder = tmp_path / "sweep"
    victim = worker(space, "--trials", "2", "--out", str(folder))
    wait_for(folder / "trials" / "trial-0000" / "metrics.csv", victim)  # an epoch done, two to go
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert [t.state.name for t in load(folder).trials] == ["RUNNING"]

    assert main(["sweep", "--resume", str(folder)]) == 0
    trials = load(folder).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].params == trials[0].params and trials[1].user_attrs["retry_of"] == 0  # retried
    retried = folder / "trials" / "trial-0001" / "metrics.csv"
    assert len(retried.read_text().splitlines()) == 4  # header + all 3 epochs


def test_pruning_stops_a_trial_far_behind(tiny_npz, tmp_path):
    from convtrain.sweep.storage import open_storage, open_study
    from convtrain.sweep.study import prepare, work

    space = write_space(
        tmp_path / "space.yaml", tiny_npz, epochs=3, pruner={"name": "median", "startup_trials": 1}
    )
    spec, folder, storage, name = prepare(str(space), str(tmp_path / "sweep"), None, None, None, 2)
    folder.path.mkdir()
    study = open_study(spec, open_storage(storage), name)
    study.enqueue_trial({"lr": 0.05, "weight_decay": 0.0})  # learns the bands in an epoch
    study.enqueue_trial({"lr": 0.005, "weight_decay": 0.0})
    work(0, spec, folder, storage, name, study)
    good, slow = study.trials[:2]
    assert good.state.name == "COMPLETE" and len(good.intermediate_values) == 3
    assert slow.state.name == "PRUNED", slow.intermediate_values
    assert slow.intermediate_values[1] < good.intermediate_values[1]
    assert len(slow.intermediate_values) < 3  # stopped before its last epoch
    metrics = Path(slow.user_attrs["run"]) / "metrics.csv"
    assert len(metrics.read_text().splitlines()) == 1 + len(slow.intermediate_values)


BAD_SPACES = {
    "unknown field": (
        {"space": {"learning_rate": {"type": "float", "low": 0.1, "high": 0.2}}},
        "learning_rate",
    ),
    "inverted range": ({"space": {"lr": {"type": "float", "low": 0.2, "high": 0.1}}}, "inverted"),
    "empty range": ({"space": {"lr": {"type": "log-float", "low": 0.1, "high": 0.1}}}, "empty"),
    "no choices": ({"space": {"optimizer": {"type": "categorical", "choices": []}}}, "choices"),
    "invalid value": ({"space": {"optimizer": {"type": "categorical", "choices": ["sgd", "lion"]}}}, "lion"),
    "grid on a float": (
        {"sampler": "grid", "space": {"lr": {"type": "float", "low": 0.1, "high": 0.2}}},
        "step",
    ),
}


@pytest.mark.parametrize("case", BAD_SPACES)
def test_bad_sweep_files_are_one_line_errors_before_any_trial(case, tiny_npz, tmp_path, capsys):
    values, named = BAD_SPACES[case]
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"base": {"dataset": f"npz:{tiny_npz}"}, **values}))
    assert main(["sweep", str(space), "--out", str(tmp_path / "sweep")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error and named in error and str(space) in error
    assert not (tmp_path / "sweep").exists()


def test_unreachable_storage_and_a_study_with_another_space_are_refused(tiny_npz, tmp_path, capsys):
    space = write_space(tmp_path / "space.yaml", tiny_npz)
    url = f"sqlite:///{tmp_path}/no/such/folder/x.db"
    assert main(["sweep", str(space), "--storage", url, "--out", str(tmp_path / "a")]) == 2
    error = capsys.readouterr().err.strip()
    assert "cannot reach storage" in error and url in error and "\n" not in error

    storage = f"sqlite:///{tmp_path}/shared.db"
    optuna.create_study(storage=storage, study_name="taken").set_user_attr("convtrain_space", "another")
    assert (
        main(["sweep", str(space), "--storage", storage, "--study", "taken", "--out", str(tmp_path / "b")])
        == 2
    )
    error = capsys.readouterr().err.strip()
    assert "another search space" in error and "'taken'" in error
    assert not (tmp_path / "b" / "trials").exists()


def test_without_optuna_the_error_names_the_extra(tiny_npz, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` now fails as if not installed
    space = write_space(tmp_path / "space.yaml", tiny_npz)
    assert main(["sweep", str(space), "--out", str(tmp_path / "sweep")]) == 2
    assert capsys.readouterr().err.strip() == "error: sweeps need Optuna: pip install 'convtrain[sweep]'"
