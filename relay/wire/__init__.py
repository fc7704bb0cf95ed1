"""The wire protocol, pure: the softphone contract (``contract``), the ``softphone.v1`` frames
(``frames``), one session's state machine (``protocol``), agent tokens (``auth``) and E.164
numbers (``phone``). Messages and time in, decisions out: no socket, no Redis, no file.
"""
