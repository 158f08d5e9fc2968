"""``python -m builder``: the ``l5net`` command (every subcommand, see ``--help``)."""

import sys

from .commands.cli import l5net_main

sys.exit(l5net_main())
