"""The check folder, and the one place its file names are written (as runs/run_dir.py is for runs).

checks/mnist/                   a check folder (`convtrain data check mnist --out checks/mnist`)
  check.json                    every finding (schema 1), written last: the marker of a finished check
  issues.csv                    one row per flagged image (`train --exclude checks/mnist/issues.csv`)
  ranking.csv                   with --labels: the images ranked for review, most suspicious first
  check.html                    the page
  split/, split.csv             --fix-split: links to the files with leaking training images moved
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from convtrain.base.atomic_files import write_json_atomic, write_text_atomic
from convtrain.base.errors import ConfigError
from convtrain.datacheck.check_outputs import RANKING_COLUMNS, issue_rows, issues_csv
from convtrain.runs.run_dir import Folder, RunFile


class CheckDir(Folder):
    """A data check's folder: its file names, the writer of a finished check and the reader of one."""

    json_path = RunFile("check.json")
    issues_path = RunFile("issues.csv")
    ranking_path = RunFile("ranking.csv")
    page_path = RunFile("check.html")
    split_dir = RunFile("split")
    split_staging_dir = RunFile(".split.tmp")
    split_csv_path = RunFile("split.csv")

    def write(self, summary: dict[str, Any], page: str) -> list[Path]:
        """issues.csv, ranking.csv (with labels), check.html, then check.json (the marker of a finished
        check), each atomically; returns the files written."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.json_path.unlink(missing_ok=True)  # an older check's marker must not vouch for new files
        self.ranking_path.unlink(missing_ok=True)  # nor an older check's ranking sit beside it
        written = [write_text_atomic(self.issues_path, issues_csv(issue_rows(summary)))]
        if summary["labels"] is not None:
            ranked = issues_csv(summary["labels"]["ranked"], RANKING_COLUMNS)
            written.append(write_text_atomic(self.ranking_path, ranked))
        written.append(write_text_atomic(self.page_path, page))
        written.append(write_json_atomic(self.json_path, summary))
        return written

    def summary(self) -> dict[str, Any]:
        """check.json of a finished check, or a one-line error when there is none."""
        try:
            return json.loads(self.json_path.read_text())
        except (OSError, ValueError):
            raise ConfigError(
                f"{self.path} holds no finished check (check.json missing or unreadable)"
            ) from None
