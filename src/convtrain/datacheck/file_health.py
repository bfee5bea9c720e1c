"""The files check: broken, zero-byte and misnamed image files; mixed sizes, channels and modes.

A folder dataset is checked file by file with the folder reader's own header probe (so what this
check calls broken is exactly what training skips), plus the decoded pixels for files whose header
is valid but whose data is not. Other datasets (registered, npz:) are arrays the readers already
validated; for them this check only lists blank images (every pixel the same) by index.

    python -c "from convtrain.datacheck.file_health import scan_folder; print(scan_folder('../shared/datasets/cifar10-sample'))"
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from convtrain.data.decode import GRAY_MODES, IMAGE_EXTENSIONS, PIL_ERRORS, probe_image
from convtrain.data.formats.image_folder import list_visible, split_trees

# The extensions each PIL format is expected under; a file whose content is another format is misnamed.
FORMAT_EXTENSIONS = {
    "PNG": {".png"},
    "JPEG": {".jpg", ".jpeg"},
    "BMP": {".bmp"},
    "WEBP": {".webp"},
    "TIFF": {".tif", ".tiff"},
    "GIF": {".gif"},
    "HEIF": {".heic", ".heif"},
}


@dataclass
class FileIssue:
    """One file (folders) or image index (arrays) the files check flags."""

    split: str
    kind: str  # zero-byte, unreadable, not-image, misnamed, undecodable, odd-size, odd-mode, blank
    detail: str
    path: str = ""
    index: int = -1  # position in the split as loaded, when the image was loaded

    def to_dict(self) -> dict:
        return {
            "split": self.split,
            "kind": self.kind,
            "path": self.path,
            "index": self.index,
            "detail": self.detail,
        }


@dataclass
class FileReport:
    """What the files check found, per split: issues, and the sizes and modes seen in headers."""

    issues: list[FileIssue] = field(default_factory=list)
    sizes: dict[str, Counter] = field(default_factory=dict)  # split -> Counter of "WxH"
    modes: dict[str, Counter] = field(default_factory=dict)  # split -> Counter of PIL modes
    files: int = 0  # files looked at (folders), or images (arrays)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(issue.kind for issue in self.issues).items()))

    def broken_paths(self) -> set[str]:
        """Files training cannot use: they never become images."""
        return {
            i.path for i in self.issues if i.kind in ("zero-byte", "unreadable", "not-image", "undecodable")
        }


def _format_of(path: Path) -> str | None:
    try:
        with Image.open(path) as image:
            return image.format
    except PIL_ERRORS:
        return None


def _check_file(path: Path, split: str) -> tuple[FileIssue | None, tuple[tuple[int, int], str] | None]:
    """(an issue or None, the (size, mode) header when the reader will read the file)."""
    if path.stat().st_size == 0:
        return FileIssue(split, "zero-byte", "empty file", str(path)), None
    probe = probe_image(path)
    if isinstance(probe, str):
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            found = _format_of(path)
            if found:  # a real image the reader skips for its name
                expected = sorted(FORMAT_EXTENSIONS.get(found, {".png"}))[0]
                return FileIssue(
                    split,
                    "misnamed",
                    f"a {found} image named {path.suffix or '(no extension)'}; "
                    f"rename it to {expected} to use it",
                    str(path),
                ), None
            return FileIssue(split, "not-image", probe, str(path)), None
        return FileIssue(split, "unreadable", probe, str(path)), None
    found = _format_of(path)
    if found in FORMAT_EXTENSIONS and path.suffix.lower() not in FORMAT_EXTENSIONS[found]:
        detail = f"a {found} image named {path.suffix} (read anyway)"
        return FileIssue(split, "misnamed", detail, str(path)), probe
    return None, probe


def scan_folder(root: str | Path) -> FileReport:
    """Every file under a folder dataset's class folders: issues, and header sizes and modes per split."""
    report, headers = FileReport(), {}
    for split, tree in split_trees(Path(root)).items():
        report.sizes[split], report.modes[split] = Counter(), Counter()
        for folder in (p for p in list_visible(tree) if p.is_dir()):
            for path in (p for p in list_visible(folder) if p.is_file()):
                report.files += 1
                issue, header = _check_file(path, split)
                if issue is not None:
                    report.issues.append(issue)
                if header is not None:
                    (width, height), mode = header
                    headers[path] = (split, f"{width}x{height}", mode)
                    report.sizes[split][f"{width}x{height}"] += 1
                    report.modes[split][mode] += 1
    _flag_odd_geometry(report, headers)
    return report


def _flag_odd_geometry(report: FileReport, headers: dict) -> None:
    """Files whose size differs from the most common, or whose mode is gray among colour (or back)."""
    if not headers:
        return
    sizes = Counter(size for _, size, _ in headers.values())
    common_size = sizes.most_common(1)[0][0]
    gray = sum(mode in GRAY_MODES for _, _, mode in headers.values())
    majority_gray = gray > len(headers) - gray
    for path, (split, size, mode) in headers.items():
        if size != common_size:
            detail = f"{size} among mostly {common_size}: resized for training"
            report.issues.append(FileIssue(split, "odd-size", detail, str(path)))
        if (mode in GRAY_MODES) != majority_gray:
            kind = "gray" if mode in GRAY_MODES else "colour"
            detail = f"a {kind} image (mode {mode}) among mostly {'gray' if majority_gray else 'colour'}: converted"
            report.issues.append(FileIssue(split, "odd-mode", detail, str(path)))


def blank_images(split: str, images: torch.Tensor) -> list[FileIssue]:
    """Images (N, C, H, W) whose pixels all have one value: empty frames, failed conversions."""
    flat = images.flatten(1)  # (N, C*H*W)
    blank = (flat == flat[:, :1]).all(1).nonzero().flatten().tolist()
    return [FileIssue(split, "blank", f"every pixel is {int(flat[i, 0])}", index=i) for i in blank]
