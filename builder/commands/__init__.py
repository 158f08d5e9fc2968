"""The command line: ``l5net`` / ``build-network`` / ``run-network`` and the sweep commands.

The top layer: it may import every other layer; nothing imports it.
"""
