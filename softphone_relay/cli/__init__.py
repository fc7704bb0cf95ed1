"""The ``softphone-relay`` command line: the composition root that wires the packages together.
``main`` only parses; each command group is a module of its own that imports what it uses.
Nothing imports this package.
"""
