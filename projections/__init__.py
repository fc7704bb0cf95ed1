"""Projections: consumer-group workers that fold the event log into derived state and effects.
Imports ``relay`` (the log's model), never the reverse.

``worker`` is the shell every projection runs in, ``settle`` its pure policy, ``registry`` the one
list of groups, ``settings`` the workers' settings. Each projection is a package with a pure
``fold`` (events in, decisions out) and a ``projection`` shell that carries the decisions out:
``calls`` (one CRM record per call), ``dispatch`` (requests into commands), ``presence`` (agent
presence, echoes suppressed); ``archive`` writes the log into segments. The sinks they write
through live here too: ``salesforce`` (with its local stand-in).
"""
