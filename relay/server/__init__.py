"""The relay's asyncio shell: ``server`` (the process and its relay-wide loops), ``connection``
(one TCP connection on websockets' sans-I/O protocol), ``sessions`` (one agent's session carried
out over it), ``appender`` (every connection's events appended in batches), ``delivery``
(commands to the sockets this relay holds), ``http`` (the GET endpoints and the wrapper's
files), ``dispositions`` (codes for welcomes) and ``metrics``.
"""
