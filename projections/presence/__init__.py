"""The ``presence`` projection: each agent's latest ``statusChanged``, and the real changes with
our own ``update_presence`` echoes left out (``fold``: the rule; ``projection``: Redis).
"""
