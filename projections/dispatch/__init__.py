"""The ``dispatch`` projection: click-to-dial and presence requests in the log become commands
to the agent's softphone, at most once each (``fold``: what a request becomes; ``projection``:
the enqueue and the request statuses).
"""
