"""report.html in a real headless browser (Debian's chromium): no console errors, every image renders.

Skipped when chromium is not installed (apt-get install chromium), except in CI, where that fails.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import chromium, needs_chromium, run_page_probe  # noqa: F401 (the fixture)

pytestmark = pytest.mark.usefixtures("needs_chromium")

PICTURES = {"curves", "confusion", "per_class", "predictions", "mistakes", "batch", "filters"}
if importlib.util.find_spec("captum"):  # "what the network looks at" needs convtrain[explain]
    PICTURES.add("explain")

# Injected into a copy of the page: reports every image's decoded size into the DOM once the page has
# loaded, logs a probe (proof that console output is captured), and adds one image that cannot decode
# (proof that a broken image would be caught).
CHECK = """
<img id="probe-broken" alt="" src="data:image/png;base64,AAAA">
<script>
console.log("convtrain-probe");
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const out = document.createElement("pre");
  out.id = "check";
  out.textContent = JSON.stringify(images.map(i => [i.id, i.complete, i.naturalWidth, i.naturalHeight]));
  document.body.appendChild(out);
});
</script>
"""


@pytest.fixture
def report(reported_run) -> Path:
    return reported_run / "report.html"


def test_report_loads_without_console_errors_and_every_image_renders(report, tmp_path):
    probed, dom = run_page_probe(report.read_text(), CHECK, tmp_path)
    images = {name: (complete, width, height) for name, complete, width, height in probed}
    assert images.pop("probe-broken")[1] == 0  # the check does see an image that fails to decode
    assert set(images) == PICTURES
    for name, (complete, width, height) in images.items():
        assert complete and width > 100 and height > 100, name
    if "explain" in PICTURES:  # the heat-map section rendered, under its heading
        assert "<h2>What the network looks at</h2>" in dom


def test_report_screenshot_looks_right(report, tmp_path):
    shot = tmp_path / "report.png"
    done = chromium(
        tmp_path / "profile",
        "--window-size=1200,1600",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        report.as_uri(),
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.array(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape == (1600, 1200, 3)
    white = (pixels > 245).all(-1).mean()
    assert 0.4 < white < 0.98  # a page with content on a white background, not blank and not an error screen
    heading = pixels[:80]
    assert (heading.sum(-1) < 200).mean() > 0.005  # the dark title text at the top

    def near(colour: str) -> int:
        target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(pixels - target).sum(-1) < 40).sum())

    assert near("#1f6feb") > 100 and near("#d97706") > 100  # train and validation curves are on screen
