"""The NEST backend: runs point-neuron SONATA networks (``target_simulator: NEST``).

The only package that imports ``nest`` (lazily, inside functions: importing this package does
not start NEST). :mod:`.config` reads the configs, :mod:`.checks` checks them against NEST,
:mod:`.loader` builds the network, :mod:`.runner` runs it and writes ``output/``,
:mod:`.plots` draws it.
"""

__all__ = ["main", "run"]


def main(argv: list[str] | None = None) -> int:
    """``run-network DIR`` for a NEST config."""
    from .runner import main as _main

    return _main(argv)


def run(config, **kwargs):  # noqa: ANN001, ANN201 -- re-export of builder.simulators.nest.runner.run
    """Run a NEST config; see :func:`builder.simulators.nest.runner.run`."""
    from .runner import run as _run

    return _run(config, **kwargs)
