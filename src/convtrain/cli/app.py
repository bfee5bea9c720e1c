"""The command table and the entry point: each group of subcommands registers itself from its own
module (GROUPS); main() parses, runs the handler and turns errors into one line and an exit code.

    convtrain train --model lenet5 --epochs 5
    convtrain --help

Bad input exits with code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable

from convtrain.base.errors import ConvtrainError
from convtrain.cli import data_commands, run_commands, sweep_commands, train_commands
from convtrain.system import distributed

GROUPS = (train_commands, sweep_commands, data_commands, run_commands)  # in the order `--help` lists them


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convtrain", description="Train convolutional image classifiers, fast."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Callable | None, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    for group in GROUPS:
        group.register(command)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line; under DDP from the first process only, as every process reads the
    same data and would say the same thing (only rank 0 prints)."""
    if distributed.world()[0] == 0:
        print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        return args.handler(args)
    except ConvtrainError as error:
        distributed.refusal(f"error: {error}")
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
