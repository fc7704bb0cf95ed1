"""Operator tools over the log: reading it in time order (``log_reader``), ``status`` and the log
gauges, ``replay`` (the pure fold of a range and comparison) and its targets, ``retention``, and
``dead_letters``.
"""
