"""The projections' exceptions.

Tree::

    ProjectionError
    └── SalesforceLoginFailed       the org refused our credentials, or a session expired
                                    with no way to log in again (names the flow and the code)

Everything else a projection meets is an outcome (``Done``, ``Retry``, ``Pause``, ``Reject``
in ``projections.worker``), not an exception.
"""

from __future__ import annotations


class ProjectionError(Exception):
    """Root of every error the projections raise on purpose."""


class SalesforceLoginFailed(ProjectionError):
    """Logging in to Salesforce failed; the message names the flow and Salesforce's answer."""

    def __init__(self, flow: str, code: str, message: str) -> None:
        super().__init__(f"Salesforce {flow}: {code}: {message}")
        self.flow = flow
        self.code = code
