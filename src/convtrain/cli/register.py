"""What each group of commands registers with: the `command(name, handler, help)` adder that
cli/app.py hands to every group module (train, sweep, data, run commands)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Protocol


class Add(Protocol):
    def __call__(
        self, name: str, handler: Callable[[argparse.Namespace], int] | None, help_text: str
    ) -> argparse.ArgumentParser: ...
