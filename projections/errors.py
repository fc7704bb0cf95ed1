"""The projections' exceptions.

Tree::

    ProjectionError
    ├── SalesforceLoginFailed   (projections.salesforce.errors) the org refused our
    │                           credentials, or a session expired with no way to log in again
    ├── TargetUnreadable        (softphone_relay.ops.replay_targets) a replay target holds
    │                           something else
    └── TrimRefused             (softphone_relay.ops.retention) a group that must hold the
                                trim back (the archive's) does not exist

Everything else a projection meets is an outcome (``Done``, ``Retry``, ``Pause``, ``Reject``
in ``projections.outcomes``), not an exception.
"""

from __future__ import annotations


class ProjectionError(Exception):
    """Root of every error the projections raise on purpose."""
