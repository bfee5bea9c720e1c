"""The one HTML page writer: every page convtrain writes (report.html, the seeds and sweep pages,
check.html) is a header, summary cards, sections, tables and pictures embedded as PNG data URIs, in
one style sheet. Pages have no scripts and load nothing else, so they open the same from a mail, an
archive or a CI artifact.

    parts = [header("convtrain run x", "model lenet5"), cards([("test top-1", "99.1%", "")])]
    write_page("runs/x/report.html", "convtrain run x", parts)
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from convtrain.base.atomic_files import write_text_atomic

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1f2328}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2rem}
.sub{color:#59636e;margin-top:0} img{max-width:100%;height:auto;display:block;margin:.5rem 0}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0} td,th{padding:.25rem .7rem;border-bottom:1px solid #eaeef2;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums} td.low{color:#cf222e;font-weight:600} .big{font-size:1.6rem;font-weight:600}
.cards{display:flex;gap:1rem;flex-wrap:wrap} .card{border:1px solid #d0d7de;border-radius:6px;padding:.6rem 1rem;min-width:8rem}
.card .label{color:#59636e;font-size:.8rem} .notes li{color:#9a6700} .columns{display:flex;gap:2rem;flex-wrap:wrap;align-items:flex-start}
.gallery{display:flex;flex-wrap:wrap;gap:.6rem} figure{margin:0;border:1px solid #eaeef2;border-radius:4px;padding:.3rem;text-align:center}
figure img{width:72px;height:72px;image-rendering:pixelated;display:block;margin:0 auto}
figcaption{font-size:.75rem;max-width:9rem;overflow-wrap:anywhere} .given{color:#cf222e;font-weight:600} .suggested{color:#1a7f37;font-weight:600}
.group{display:flex;gap:.4rem;align-items:flex-start;border-bottom:1px solid #eaeef2;padding:.4rem 0} .group .meta{width:9rem;font-size:.8rem;color:#59636e}
.kept{outline:2px solid #1a7f37}
"""


def escape(value: Any) -> str:
    """Text made safe for HTML, quotes included (it may stand in an attribute)."""
    return html.escape(str(value), quote=True)


def data_uri(png: bytes) -> str:
    """PNG bytes as a data: URI, so the page carries the picture itself."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image(png: bytes | str | Path, alt: str, key: str = "") -> str:
    """An <img> with its PNG inline: bytes, or the path of a PNG file."""
    data = png if isinstance(png, bytes) else Path(png).read_bytes()
    ident = f" id='{escape(key)}'" if key else ""
    return f"<img{ident} alt='{escape(alt)}' src='{data_uri(data)}'>"


def header(title: str, subtitle_html: str = "") -> str:
    """The page's <h1> and a grey line under it (subtitle_html is already escaped HTML)."""
    sub = f"<p class='sub'>{subtitle_html}</p>" if subtitle_html else ""
    return f"<h1>{escape(title)}</h1>{sub}"


def section(title: str, body_html: str, caption: str = "") -> str:
    """An <h2> section: the title, an optional grey caption (plain text), then body_html."""
    sub = f"<p class='sub'>{escape(caption)}</p>" if caption else ""
    return f"<h2>{escape(title)}</h2>{sub}{body_html}"


def cards(items: Iterable[tuple[str, Any, str]]) -> str:
    """Summary cards, each (label, big value, detail line or "")."""
    body = "".join(
        f"<div class='card'><div class='label'>{escape(label)}</div><div class='big'>{escape(value)}</div>"
        + (f"<div class='label'>{escape(detail)}</div>" if detail else "")
        + "</div>"
        for label, value, detail in items
    )
    return f"<div class='cards'>{body}</div>"


def table(head: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    """A table of plain values (escaped here); columns whose index is in `numeric` align right."""

    def cell(tag: str, index: int, value: Any) -> str:
        css = " class='n'" if index in numeric else ""
        return f"<{tag}{css}>{escape(value)}</{tag}>"

    top = "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(head)) + "</tr>"
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>{top}{body}</table>"


def render_page(title: str, parts: Iterable[str]) -> str:
    """The whole document: head, style sheet, and the non-empty parts in order."""
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<link rel='icon' href='data:,'><title>{escape(title)}</title><style>{STYLE}</style></head>\n"
        "<body>\n" + "\n".join(part for part in parts if part) + "\n</body></html>\n"
    )


def write_page(path: str | Path, title: str, parts: Iterable[str]) -> Path:
    """Write the page atomically (a temporary file, then renamed); returns its path."""
    return write_text_atomic(path, render_page(title, parts))
