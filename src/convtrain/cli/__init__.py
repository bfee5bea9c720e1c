"""The command line: `convtrain COMMAND ...`, one module per group of commands.

convtrain train --model lenet5 --epochs 5
convtrain --help
"""

from convtrain.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
