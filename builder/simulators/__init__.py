"""One package per simulator: :mod:`builder.simulators.neuron` (BMTK BioNet, CoreNEURON) and
:mod:`builder.simulators.nest`. They use the core and the analysis layer, never each other and
never a command."""
