"""The ``calls`` projection: a conversation's events folded into one call record, written to the
CRM once per call (``fold``: the pure merge; ``projection``: locks, stored facts, the sink).
"""
