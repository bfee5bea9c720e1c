"""check.html in a real headless browser (Debian's chromium): no console errors, every gallery image
decodes, and the page shows label issues, duplicate groups and broken files.

The browser tests skip when chromium is not installed (apt-get install chromium), and fail in CI; the page they
open is rendered, and checked as HTML, either way.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convtrain
from browser import chromium, needs_chromium, run_page_probe  # noqa: F401 (the fixture)
from convtrain.datacheck import check_page as page

# Reports every image's decoded size once the page has loaded, and logs a probe (proof that console
# output is captured).
PROBE = """
<script>
console.log("convtrain-probe");
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "check";
  out.textContent = JSON.stringify(Array.from(document.images).map(i => [i.complete, i.naturalWidth]));
  document.body.appendChild(out);
});
</script>
"""


@pytest.fixture(scope="module")
def checked_page(tmp_path_factory) -> Path:
    """check.html of a folder with a broken file, a leak and (from fake probabilities) label issues."""
    root = tmp_path_factory.mktemp("browser") / "photos"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for k in range(6):
                pixels = rng.integers(0, 255, size=(12, 12, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{k}.png")
    (root / "train" / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    shutil.copy(root / "train" / "dog" / "1.png", root / "test" / "cat" / "leak.png")
    out = root.parent / "check"
    result = convtrain.check(f"folder:{root}", out=out, quiet=True)
    summary = dict(result.summary)
    summary["labels"] = {  # the gallery's layout does not depend on how the issues were found
        "method": "confident_joint",
        "rank_by": "self_confidence",
        "scoring": "folds",
        "folds": 2,
        "models": 2,
        "out_of_fold_accuracy": 0.5,
        "recipe": "mnist-fast",
        "model": "fastnet-tiny",
        "epochs": 1,
        "accuracy": {"train": 0.5},
        "counts": {"train": 2},
        "top": 2,
        "issues": [
            {
                "split": "train",
                "index": i,
                "path": result.images["train"].paths[i],
                "given": "cat",
                "suggested": "dog",
                "confidence": 0.9,
                "score": 0.1,
            }
            for i in (0, 3)
        ],
    }
    summary["labels"]["ranked"] = [
        {"rank": rank, **item, "flagged": True} for rank, item in enumerate(summary["labels"]["issues"], 1)
    ]
    path = out / "check.html"
    path.write_text(page.render_page(summary, result.images))
    return path


def test_check_page_holds_the_label_issues_the_ranked_list_and_the_broken_file(checked_page):
    html = checked_page.read_text()
    assert "out-of-fold probabilities from 2 fastnet-tiny models" in html and "train 50.00%" in html
    assert html.count("class='given'>cat") >= 4  # two issues, in the issues gallery and the ranked list
    assert "Ranked for review" in html and "broken.png" in html


@pytest.mark.usefixtures("needs_chromium")
def test_check_page_renders_every_image_without_console_errors(checked_page, tmp_path):
    images, dom = run_page_probe(checked_page.read_text(), PROBE, tmp_path)
    assert len(images) == 2 + 2 + 2  # two label issues, the same two ranked for review, a duplicate pair
    assert all(complete and width > 0 for complete, width in images)
    assert "broken.png" in dom and "&rarr;" not in dom and "→" in dom  # given → suggested, as text
    assert dom.count('class="group"') == 1


@pytest.mark.usefixtures("needs_chromium")
def test_check_page_screenshot_is_not_blank(checked_page, tmp_path):
    shot = tmp_path / "page.png"
    done = chromium(
        tmp_path / "profile",
        "--window-size=1100,1400",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        checked_page.as_uri(),
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.array(Image.open(shot).convert("RGB")).astype(int)
    white = (pixels > 245).all(-1).mean()
    assert 0.4 < white < 0.99
    red = ((pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)).sum()
    assert red > 20  # the given labels, in red
