"""Progress of an epoch: a bar with running loss, accuracy and images/s on a terminal or in a notebook,
plain lines elsewhere.

The bar redraws on a timer (every REDRAW_SECONDS), not every so many steps: each redraw reads the
running sums back from the device, a sync that would stall a GPU if it came every step, as
total // 50 steps does for a 48-step epoch.
"""

from __future__ import annotations

import importlib.util
import sys
import time

REDRAW_SECONDS = 0.5


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ipykernel), where stderr is not a terminal but widgets work."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = shell.get_ipython() if hasattr(shell, "get_ipython") else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class Progress:
    """Updated on a timer, and every --log-every steps: each update reads the running loss back from
    the device (a sync)."""

    def __init__(self, total: int, title: str, enabled: bool, log_every: int = 0):
        self.total, self.title, self.log_every = total, title, log_every
        self.started = time.perf_counter()
        self.bar = None
        if enabled and in_notebook() and importlib.util.find_spec("ipywidgets"):  # Jupyter has no terminal
            from tqdm.notebook import tqdm as notebook_tqdm

            self.bar = notebook_tqdm(total=total, desc=title, leave=False)
        elif enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=title, leave=False, dynamic_ncols=True, file=sys.stderr)
        self.drawn = self.started  # when the bar was last redrawn
        self.done = 0
        self.window = (0.0, 0.0, 0, 0)  # loss sum, right answers, images, step at the last line

    def wants_update(self, step: int) -> bool:
        if self.log_every and step % self.log_every == 0:
            return True
        return self.bar is not None and time.perf_counter() - self.drawn >= REDRAW_SECONDS

    def update(self, step: int, loss_sum: float, correct: float, images: int) -> None:
        """Show the epoch so far: sums of the loss (per image) and of the right answers, over `images`.

        The bar shows the running mean over the epoch; a --log-every line shows the mean over the
        steps since the previous line, as the classic loops do (running_loss / 100, then reset).
        """
        rate = images / max(1e-9, time.perf_counter() - self.started)
        if self.bar is not None:
            self.drawn = time.perf_counter()
            self.bar.update(step - self.done)
            self.bar.set_postfix(
                loss=f"{loss_sum / images:.4f}", acc=f"{100 * correct / images:.2f}%", img_s=f"{rate:.0f}"
            )
        if self.log_every and step % self.log_every == 0:
            seen = images - self.window[2]
            loss = (loss_sum - self.window[0]) / max(1, seen)
            accuracy = (correct - self.window[1]) / max(1, seen)
            line = (
                f"{self.title} step {step}/{self.total}  loss {loss:.4f}  acc {100 * accuracy:.2f}%"
                f"  (last {step - self.window[3]} steps)  {rate:.0f} img/s"
            )
            (self.bar.write if self.bar is not None else print)(line)
            self.window = (loss_sum, correct, images, step)
        self.done = step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
