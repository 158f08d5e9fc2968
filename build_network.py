#!/usr/bin/env python
"""Build the network: ``python build_network.py [PARAMS.json] [SEED] [-o OUTDIR] [--force]``.

Kept for our users' existing scripts; identical to the ``build-network`` console command.
"""

import sys

from builder.commands.cli import main

if __name__ == "__main__":
    sys.exit(main())
