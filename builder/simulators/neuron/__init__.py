"""The NEURON layer of the builder: the only place the builder's code touches NEURON.

Importing this package does not import NEURON. :func:`segment_table` derives a cell's segment
table in a child process (or reads it from the cache); see
:mod:`builder.simulators.neuron.celltable`.
"""

from .celltable import cached_segment_table_path, segment_table

__all__ = ["cached_segment_table_path", "segment_table"]
