"""The core: knows no recipe, no simulator and no command.

The network spec and its builder (:mod:`builder.core.spec`), schema validation, named random
streams, soma and synapse placement, the SONATA and config writers and readers, the one
atomic-write helper (:mod:`builder.core.output`), cell components and the NMODL compile cache.
Everything above it (recipes, analysis, simulators, commands) imports from here; nothing here
imports from them (checked by the import contracts in ``pyproject.toml``).
"""
