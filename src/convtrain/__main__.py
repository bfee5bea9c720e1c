"""python -m convtrain: the same as the `convtrain` command."""

import sys

from convtrain.cli import main

sys.exit(main())
