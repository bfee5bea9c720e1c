"""What every command module shares: the `command(name, handler, help)` adder it registers with."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Protocol


class Add(Protocol):
    def __call__(
        self, name: str, handler: Callable[[argparse.Namespace], int] | None, help_text: str
    ) -> argparse.ArgumentParser: ...
