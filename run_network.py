#!/usr/bin/env python
"""Run a built network: ``[mpiexec -n N] python run_network.py [CONFIG.json | DIR]``.

Kept for our users' existing scripts; identical to the ``run-network`` console command.
"""

import sys

from builder.commands.run_cli import main

if __name__ == "__main__":
    sys.exit(main())
