"""The Salesforce integration's exceptions: part of the projections' tree
(:class:`~projections.errors.ProjectionError`), so the command line reports them
alike. Every other answer of the org is an outcome of the sink, not an exception.
"""

from __future__ import annotations

from projections.errors import ProjectionError


class SalesforceLoginFailed(ProjectionError):
    """Logging in to Salesforce failed; the message names the flow and Salesforce's answer."""

    def __init__(self, flow: str, code: str, message: str) -> None:
        super().__init__(f"Salesforce {flow}: {code}: {message}")
        self.flow = flow
        self.code = code
