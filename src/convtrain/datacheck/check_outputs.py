"""What a check's files hold (CheckDir in check_dir.py writes them): check.json (stable keys), issues.csv (one row per flagged image),
ranking.csv (with --labels: the images ranked for review, most suspicious first) and check.html
(check_page.py), each written atomically, check.json last: a check stopped part-way (Ctrl-C) leaves no
check.json, so a check.json on disk always belongs to a finished check.

check.json keys (schema 1): convtrain_check, dataset, source, classes, channels, image_size,
splits {split: images}, settings, files, duplicates, labels (null without --labels; its `ranked`
is the list ranking.csv holds), balance, seconds.

    python -c "import json; print(json.load(open('checks/mnist/check.json'))['duplicates']['pairs'])"
"""

from __future__ import annotations

import csv
import io
from typing import Any

SCHEMA = 1
CSV_COLUMNS = (
    "check",
    "kind",
    "split",
    "index",
    "path",
    "given",
    "suggested",
    "confidence",
    "group",
    "detail",
)

RANKING_COLUMNS = ("rank", "split", "index", "path", "given", "suggested", "confidence", "score", "flagged")


def issue_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per flagged image: broken or odd files, the removable copies of duplicate groups
    (every member but the kept one), and label issues in rank order."""
    rows = []
    for item in summary["files"]["issues"]:
        rows.append({"check": "files", **_pick(item, "kind", "split", "index", "path", "detail")})
    for group in summary["duplicates"]["groups"]:
        kept = group["members"][0]
        for member in group["members"][1:]:
            rows.append(
                {
                    "check": "duplicates",
                    "kind": group["kind"],
                    **_pick(member, "split", "index", "path"),
                    "given": member["label"],
                    "confidence": group["score"],
                    "group": group["id"],
                    "detail": f"copy of {kept['path'] or kept['split'] + '[' + str(kept['index']) + ']'} "
                    f"({kept['label']})",
                }
            )
    if summary["labels"] is not None:
        for item in summary["labels"]["issues"]:
            rows.append(
                {
                    "check": "labels",
                    "kind": "label",
                    **_pick(item, "split", "index", "path", "given", "suggested", "confidence"),
                    "detail": f"{summary['labels']['rank_by']} {item['score']}",
                }
            )
    return rows


def _pick(item: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: item[key] for key in keys}


def issues_csv(rows: list[dict[str, Any]], columns: tuple[str, ...] = CSV_COLUMNS) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row.get(key, "") for key in columns})
    return buffer.getvalue()
