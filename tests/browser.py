"""Headless Chromium for the page tests (report.html, check.html): one launcher, one set of flags."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def needs_chromium() -> None:
    """Skip without Chromium on a developer's machine; fail in CI, where .ci/run installs it, so that
    the browser tests can never pass there by skipping."""
    if CHROMIUM is not None:
        return
    if os.environ.get("CI"):
        pytest.fail("CI has no chromium: .ci/run installs it (apt-get install -y chromium); see its log")
    pytest.skip("needs a chromium browser (apt-get install chromium)")


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium with a throw-away profile and no network chatter; its output captured."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def run_page_probe(html: str, probe: str, workdir: Path) -> tuple[object, str]:
    """Open `html` with the `probe` script added before </body> in Chromium; the JSON the probe wrote
    into <pre id="check">, and the page's DOM. Fails if Chromium fails, the console was not captured, or the page logged
    anything but the probe's own "convtrain-probe" lines (a script error, a missing file)."""
    page = workdir / "probed.html"
    page.write_text(html.replace("</body>", probe + "</body>"))
    done = chromium(
        workdir / "profile",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.as_uri(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert any('"convtrain-probe"' in line for line in console), "console output was not captured"
    assert [line for line in console if "convtrain-probe" not in line] == []
    found = re.search(r'<pre id="check">(.*?)</pre>', done.stdout, re.S)
    assert found, "the page's load handler never ran"
    return json.loads(found.group(1)), done.stdout
