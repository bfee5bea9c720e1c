"""check.html: the data check as one self-contained page, with the flagged images embedded.

Sections: a summary of every check, label issues as a gallery (each image captioned given -> suggested
and the model's confidence), the images ranked for review (--top) in rank order, captioned the same way, duplicate groups side by side (kept copy first), broken and odd files as
a table, and the class balance. Images are PNG data URIs, scaled up without smoothing; the page has no
scripts and loads nothing.

    python -c "import convtrain; convtrain.check('mnist', split='test', out='checks/mnist-test')"
"""

from __future__ import annotations

import io
from typing import Any

import torch
from PIL import Image

from convtrain.base.html_page import cards as summary_cards
from convtrain.base.html_page import data_uri
from convtrain.base.html_page import escape as _e
from convtrain.base.html_page import render_page as document
from convtrain.datacheck.source import SplitImages

SHOWN_LABELS = 200  # label issues shown as pictures (all are in issues.csv)
SHOWN_GROUPS = 100  # duplicate groups shown
SHOWN_MEMBERS = 8  # images shown per group
SHOWN_FILES = 300  # file issues listed
THUMB = 64  # largest thumbnail side in pixels


def thumbnail(image: torch.Tensor) -> str:
    """A uint8 (C, H, W) image as a PNG data URI, at most THUMB pixels a side."""
    pixels = image.permute(1, 2, 0).numpy()  # (H, W, C)
    picture = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    picture.thumbnail((THUMB, THUMB))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return data_uri(buffer.getvalue())


def _name(item: dict[str, Any]) -> str:
    if item.get("path"):  # split/class/file: the file name alone is ambiguous across folders
        return "/".join(item["path"].replace("\\", "/").split("/")[-3:])
    return f"{item['split']}[{item['index']}]"


def _figure(splits: dict[str, SplitImages], item: dict[str, Any], caption: str, css: str = "") -> str:
    image = splits[item["split"]].images[item["index"]]
    return (
        f"<figure class='{css}'><img src='{thumbnail(image)}' alt='{_e(_name(item))}' title='{_e(item.get('path') or '')}'>"
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _cards(summary: dict[str, Any]) -> str:
    labels = summary["labels"]
    cards = [
        (
            "images",
            sum(summary["splits"].values()),
            ", ".join(f"{k} {v}" for k, v in summary["splits"].items()),
        ),
        (
            "file issues",
            len(summary["files"]["issues"]),
            ", ".join(f"{k} {v}" for k, v in summary["files"]["counts"].items()) or "none",
        ),
        (
            "duplicate groups",
            len(summary["duplicates"]["groups"]),
            f"{summary['duplicates']['exact_groups']} exact, {summary['duplicates']['near_groups']} near, "
            f"{summary['duplicates'].get('edited_groups', 0)} edited",
        ),
        (
            "label issues",
            "-" if labels is None else len(labels["issues"]),
            "not checked (--labels)"
            if labels is None
            else ", ".join(f"{k} {v}" for k, v in labels["counts"].items()),
        ),
        (
            "small classes",
            len(summary["balance"]["flagged"]),
            f"under {100 * summary['balance']['min_share']:.1f}% of a split",
        ),
    ]
    return summary_cards(cards)


def _labels(summary: dict[str, Any], splits: dict[str, SplitImages]) -> str:
    labels = summary["labels"]
    if labels is None:
        return "<h2>Label issues</h2><p>Not checked: run with --labels.</p>"
    items = labels["issues"][:SHOWN_LABELS]
    figures = "".join(
        _figure(
            splits,
            item,
            f"<span class='given'>{_e(item['given'])}</span> &rarr; <span class='suggested'>{_e(item['suggested'])}</span>"
            f" ({100 * item['confidence']:.0f}%)<br>{_e(_name(item))}",
        )
        for item in items
    )
    more = (
        f" The first {len(items)} of {len(labels['issues'])} are shown; issues.csv lists all."
        if len(labels["issues"]) > len(items)
        else ""
    )
    return (
        f"<h2>Label issues</h2><p class='sub'>Confident learning ({_e(labels['method'])}, ranked by {_e(labels['rank_by'])}) "
        f"on {_scoring(labels)}. Captions: "
        f"<span class='given'>given</span> &rarr; <span class='suggested'>suggested</span> (the model's confidence).{more}</p>"
        f"<div class='gallery'>{figures or '<p>No label issues found.</p>'}</div>"
    )


def _scoring(labels: dict[str, Any]) -> str:
    """Where the label check's probabilities came from, in words."""
    models = f"{_e(labels['model'])} models (recipe {_e(labels['recipe'])}, {labels['epochs']} epochs, no label smoothing)"
    accuracy = ", ".join(f"{_e(s)} {100 * a:.2f}%" for s, a in labels["accuracy"].items())
    if labels["scoring"] == "folds":
        where = f"out-of-fold probabilities from {labels['folds']} {models}"
    else:
        where = f"probabilities from {labels['models']} {models} trained on the whole train split"
    return f"{where}; accuracy against the given labels {accuracy}"


def ranked_gallery(summary: dict[str, Any], splits: dict[str, SplitImages]) -> str:
    """The --top images of each checked split in rank order, captioned given -> suggested (confidence):
    the list a person reviews, whether or not confident learning flagged them."""
    labels = summary["labels"]
    if labels is None or not labels["ranked"]:
        return ""
    figures = "".join(
        _figure(
            splits,
            item,
            f"#{item['rank']} <span class='given'>{_e(item['given'])}</span> &rarr; "
            f"<span class='suggested'>{_e(item['suggested'])}</span> ({100 * item['confidence']:.0f}%)"
            f"<br>{_e(_name(item))}{' · flagged' if item['flagged'] else ''}",
            "kept" if item["flagged"] else "",
        )
        for item in labels["ranked"]
    )
    return (
        f"<h2 id='ranked'>Ranked for review</h2><p class='sub'>The {labels['top']} images of each checked split whose "
        f"given label the models trust least (by {_e(labels['rank_by'])}), most suspicious first, flagged by confident "
        f"learning or not (those flagged are outlined in green). Captions: #rank <span class='given'>given</span> &rarr; "
        f"<span class='suggested'>suggested</span> (the models' probability of the suggestion). ranking.csv lists "
        f"the same images in the same order.</p><div class='gallery'>{figures}</div>"
    )


def _duplicates(summary: dict[str, Any], splits: dict[str, SplitImages]) -> str:
    duplicates = summary["duplicates"]
    pairs = "".join(
        f"<tr><td>{_e(pair)}</td><td class='n'>{c['groups']}</td><td class='n'>{c['images']}</td></tr>"
        for pair, c in duplicates["pairs"].items()
    )
    rows = []
    across = sorted(duplicates["groups"], key=lambda g: len({m["split"] for m in g["members"]}) < 2)
    for group in across[:SHOWN_GROUPS]:
        members = group["members"][:SHOWN_MEMBERS]
        figures = "".join(
            _figure(splits, m, f"{_e(_name(m))}<br>label {_e(m['label'])}", "kept" if i == 0 else "")
            for i, m in enumerate(members)
        )
        extra = (
            f" (+{len(group['members']) - len(members)} more)" if len(group["members"]) > len(members) else ""
        )
        rows.append(
            f"<div class='group'><div class='meta'>group {group['id']}<br>{_e(group['kind'])}, score {group['score']}"
            f"<br>{len(group['members'])} images{extra}</div>{figures}</div>"
        )
    return (
        f"<h2>Duplicates and leaks</h2><p class='sub'>Exact: identical decoded pixels. Near: correlation at least "
        f"{duplicates['threshold']} after the best shift (up to 2 px) and blur. "
        + (
            "Edited: the same shot cropped, shifted, rescaled, recoloured or JPEG'd, aligned score at least "
            f"{duplicates['edited_threshold']}. "
            if duplicates.get("edited_threshold")
            else "Edited copies are searched in colour images only. "
        )
        + "Groups across splits (leaks) come first; the kept copy (green outline) is "
        "first in each; issues.csv lists the others.</p>"
        f"<table><tr><th>splits</th><th>groups</th><th>images</th></tr>{pairs}</table>"
        + ("".join(rows) or "<p>No duplicates found.</p>")
    )


def _files(summary: dict[str, Any], splits: dict[str, SplitImages]) -> str:
    files = summary["files"]
    listed = files["issues"][:SHOWN_FILES]
    rows = "".join(
        f"<tr><td>{_e(i['kind'])}</td><td>{_e(i['split'])}</td><td>{_e(i['path'] or i['index'])}</td><td>{_e(i['detail'])}</td></tr>"
        for i in listed
    )
    sizes = "; ".join(
        f"{split}: " + ", ".join(f"{s} x{n}" for s, n in c.items()) for split, c in files["sizes"].items()
    )
    table = (
        f"<table><tr><th>problem</th><th>split</th><th>file</th><th>detail</th></tr>{rows}</table>"
        if rows
        else "<p>No broken, misnamed or odd files.</p>"
    )
    return f"<h2>Files</h2><p class='sub'>{files['checked']} checked. {_e(sizes)}</p>{table}"


def _balance(summary: dict[str, Any]) -> str:
    balance = summary["balance"]
    splits = list(balance["counts"])
    low = {(f["split"], f["class"]) for f in balance["flagged"]}
    head = "".join(f"<th>{_e(s)}</th>" for s in splits)
    rows = "".join(
        f"<tr><td>{_e(name)}</td>"
        + "".join(
            f"<td class='n{' low' if (s, name) in low else ''}'>{balance['counts'][s][name]}</td>"
            for s in splits
        )
        + "</tr>"
        for name in summary["classes"]
    )
    return (
        f"<h2>Class balance</h2><p class='sub'>Images per class; red: under {100 * balance['min_share']:.1f}% of its split.</p>"
        f"<table><tr><th>class</th>{head}</tr>{rows}</table>"
    )


def render_page(summary: dict[str, Any], splits: dict[str, SplitImages]) -> str:
    """The whole check.html as text."""
    title = f"convtrain data check: {summary['dataset']}"
    parts = [
        f"<h1>{_e(title)}</h1><p class='sub'>{_e(summary['source'])} · {len(summary['classes'])} classes · "
        f"{summary['channels']}x{summary['image_size']}x{summary['image_size']}</p>",
        _cards(summary),
        _labels(summary, splits),
        ranked_gallery(summary, splits),
        _duplicates(summary, splits),
        _files(summary, splits),
        _balance(summary),
    ]
    return document(title, parts)
