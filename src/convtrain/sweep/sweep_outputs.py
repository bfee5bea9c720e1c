"""A sweep's outputs, made from its study alone: trials.csv, best.yaml and report.html.

python -c "from convtrain.sweep.sweep_outputs import write_outputs; from convtrain.sweep.folders import SweepDir; write_outputs(SweepDir('sweeps/space'))"
"""

from __future__ import annotations

import csv
import fcntl
import io
from pathlib import Path
from typing import Any

import yaml

from convtrain.base.atomic_files import write_text_atomic
from convtrain.sweep.folders import SweepDir
from convtrain.sweep.report_pages import write_sweep_report
from convtrain.sweep.space import SweepSpec, parse_spec
from convtrain.sweep.storage import open_storage, open_study


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
    """trials.csv, best.yaml and report.html from the study; returns the report's path.

    Every worker command writes them when it stops. One at a time (a lock in the sweep folder), each
    reading the study once it holds the lock: a worker that stopped first, while another's last
    trial still ran, can then never overwrite the later worker's files with what it read before."""
    with open(folder.path / ".outputs.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        return _write_outputs(folder, spec, study)


def _write_outputs(folder: SweepDir, spec: SweepSpec | None, study) -> Path:
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
    return write_sweep_report(folder, study, rows, spec.objective)
