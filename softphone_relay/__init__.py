"""The ``softphone-relay`` command line (the composition root)."""
