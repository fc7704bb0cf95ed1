"""Whether the integration user can see and edit the agents' Tasks, checked once at start.

A call's Task is owned by its agent and, unless the caller matched, related to no record, so
under activity sharing only its owner, the users whose role is above the owner's, and users
with Modify All Data can edit it (View All Data only reads it). A sink that cannot see a Task
takes it for missing. The probe reads what decides it for the integration user: who it is
(the UserInfo endpoint on the instance, ``/services/oauth2/userinfo``), its permission sets
(``PermissionSetAssignment``, the profile's own set included) and its role (``User``,
``UserRole``); it logs one line, a warning when the agents' Tasks are out of its reach. It
never stops the sink: an org that will not answer is logged and left alone. The queries keep
to one filter each (the stand-in's SOQL subset).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import requests
from simple_salesforce.exceptions import SalesforceError

from projections.salesforce.org_client import OrgClient, OrgPaused, transient

log = logging.getLogger(__name__)


class Reach(msgspec.Struct, frozen=True, kw_only=True):
    """What the integration user holds that decides whose Tasks it can edit."""

    user_id: str
    modify_all_data: bool
    view_all_data: bool
    role: str | None
    """The name of its role; None without one."""
    role_is_top: bool
    """Its role has no role above it."""


class Verdict(msgspec.Struct, frozen=True):
    """Whether the agents' Tasks are within reach, and one sentence saying why."""

    sees_agents_tasks: bool
    reason: str


def verdict(reach: Reach) -> Verdict:
    """What ``reach`` means for the agents' Tasks (related to no record, owned by each agent)."""
    if reach.modify_all_data:
        return Verdict(True, "Modify All Data: it sees and edits every Task")
    if reach.role is not None and reach.role_is_top:
        return Verdict(
            True,
            f"its role {reach.role!r} is at the top of the role hierarchy: it sees and edits "
            "the Tasks of agents in every role below it (not of agents in that same role)",
        )
    advice = "give it the top role (or one above every agent's), or Modify All Data"
    if reach.role is not None:
        return Verdict(
            False,
            f"its role {reach.role!r} has a role above it: it edits only the Tasks of agents "
            f"in roles below {reach.role!r}; if any agent is elsewhere, {advice}",
        )
    if reach.view_all_data:
        return Verdict(
            False,
            f"View All Data and no role: it sees the agents' Tasks but cannot edit them; {advice}",
        )
    return Verdict(
        False, f"no role and no Modify All Data: it cannot see any agent's Task; {advice}"
    )


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class VisibilityProbe:
    """Reads the integration user's reach once (again after a transient failure) and logs it."""

    def __init__(self, org: OrgClient) -> None:
        self._org = org
        self.verdict: Verdict | None = None
        """What the probe found; None until it has."""
        self._done = False

    def check(self) -> None:
        """Probe once; a transient failure leaves it for the next call, any other is logged."""
        if self._done:
            return
        try:
            reach = self._read()
        except (OrgPaused, requests.RequestException):
            return
        except SalesforceError as error:
            if transient(error):
                return
            self._unknown(str(error))
            return
        except (KeyError, ValueError, TypeError) as error:  # an answer of another shape
            self._unknown(f"unexpected answer: {error!r}")
            return
        self._done = True
        self.verdict = verdict(reach)
        level = logging.INFO if self.verdict.sees_agents_tasks else logging.WARNING
        log.log(
            level,
            "event=task_visibility user=%s sees_agents_tasks=%s reason=%r",
            reach.user_id,
            str(self.verdict.sees_agents_tasks).lower(),
            self.verdict.reason,
        )

    def _unknown(self, why: str) -> None:
        log.warning("event=task_visibility_unknown error=%r", why[:300])
        self._done = True

    def _read(self) -> Reach:
        info = self._org.call("userinfo", lambda sf: sf.oauth2("userinfo"))
        user = str(info["user_id"]) if isinstance(info, dict) else ""
        if not user:
            raise ValueError(f"no user_id in the UserInfo answer {info!r}"[:200])
        query = self._org.query_all_rows
        granted = [
            str(row["PermissionSetId"])
            for row in query(
                f"SELECT PermissionSetId FROM PermissionSetAssignment WHERE AssigneeId = "
                f"{_quoted(user)}"
            )
        ]
        sets = (
            query(
                "SELECT Id, PermissionsModifyAllData, PermissionsViewAllData FROM PermissionSet "
                f"WHERE Id IN ({', '.join(map(_quoted, granted))})"
            )
            if granted
            else []
        )
        (me,) = query(f"SELECT UserRoleId FROM User WHERE Id = {_quoted(user)}")
        role: dict[str, Any] | None = None
        if me.get("UserRoleId"):
            (role,) = query(
                f"SELECT Name, ParentRoleId FROM UserRole WHERE Id = {_quoted(me['UserRoleId'])}"
            )
        return Reach(
            user_id=user,
            modify_all_data=any(s.get("PermissionsModifyAllData") for s in sets),
            view_all_data=any(s.get("PermissionsViewAllData") for s in sets),
            role=str(role["Name"]) if role is not None else None,
            role_is_top=role is not None and not role.get("ParentRoleId"),
        )
