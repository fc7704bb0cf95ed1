"""The control API: click-to-dial and presence requests from server-side callers (Apex, Flow,
the operator CLI), each first an event in the log. ``service`` is the logic, ``api`` its HTTP
shell. Imports the wire protocol and the log's model, never the server.
"""
