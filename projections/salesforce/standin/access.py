"""Who may see and edit what in the stand-in org: activity sharing and the setup rows that
describe it (roles, permission sets, their assignments). Pure.

``ActivitySharing`` decides a Task's visibility for the session's user; the setup rows let a
client read what decides it, as in an org: ``User.UserRoleId``, ``UserRole`` (``Name``,
``ParentRoleId``), ``PermissionSet`` (``PermissionsModifyAllData``, ``PermissionsViewAllData``)
and ``PermissionSetAssignment`` (``AssigneeId``, ``PermissionSetId``), where, as Salesforce
documents, every user is assigned the permission set its profile owns. A session that runs as
no particular user acts as :data:`ADMIN_USER_ID`, a System Administrator (Modify All Data),
who sees everything.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

from projections.salesforce.standin.schema import make_id

ADMIN_USER_ID: Final = make_id("005", 999_999)
"""The user a session runs as when the test gave it none (a System Administrator)."""
PROFILE_SET: Final = make_id("0PS", 1)
"""The permission set the agents' and the integration user's profile owns (no "all data")."""
ADMIN_SET: Final = make_id("0PS", 2)
"""The System Administrator profile's permission set: Modify All Data and View All Data."""


@dataclass
class ActivitySharing:
    """Who may see and edit a Task, as activity sharing decides ("Controlled by Parent"): a
    Task related to a record (``WhoId``, ``WhatId``; Contacts and Leads readable here) goes
    with it; one related to nothing is its owner's, and seen and edited by the users whose role
    is above the owner's in the role hierarchy, and by those with Modify All Data."""

    roles: dict[str, str] = dataclasses.field(default_factory=dict)
    """User id → role name."""
    parents: dict[str, str | None] = dataclasses.field(default_factory=dict)
    """Role → the role above it (None at the top)."""
    modify_all: set[str] = dataclasses.field(default_factory=set)
    """Users with Modify All Data."""

    def above(self, viewer: str, owner: str) -> bool:
        """Whether ``viewer``'s role is above ``owner``'s."""
        mine, role = self.roles.get(viewer), self.roles.get(owner)
        seen: set[str] = set()
        while role is not None and mine is not None and role not in seen:
            seen.add(role)
            role = self.parents.get(role)
            if role == mine:
                return True
        return False

    def sees(self, viewer: str, record: dict[str, Any]) -> bool:
        """Whether ``viewer`` may see (and, for the integration user, edit) ``record``."""
        if record["attributes"]["type"] != "Task" or record.get("WhoId") or record.get("WhatId"):
            return True
        owner = record.get("OwnerId")
        return (
            owner in (None, viewer) or viewer in self.modify_all or self.above(viewer, str(owner))
        )


def _row(kind: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": kind}, **fields}


def _role_ids(sharing: ActivitySharing) -> dict[str, str]:
    names = sorted(set(sharing.parents) | set(sharing.roles.values()))
    return {name: make_id("00E", number) for number, name in enumerate(names, start=1)}


SETUP_OBJECTS: Final = frozenset({"User", "UserRole", "PermissionSet", "PermissionSetAssignment"})
"""The objects whose rows :func:`setup_rows` makes."""


def setup_rows(
    kind: str, sharing: ActivitySharing | None, users: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows of ``kind`` (one of :data:`SETUP_OBJECTS`) for this sharing and these User
    records, the admin added."""
    sharing = sharing or ActivitySharing()
    roles = _role_ids(sharing)
    everyone = [*users, _row("User", Id=ADMIN_USER_ID, Username="admin@standin.example")]
    if kind == "User":
        return [
            {**user, "UserRoleId": roles.get(sharing.roles.get(str(user["Id"]), ""))}
            for user in everyone
        ]
    if kind == "UserRole":
        return [
            _row(
                "UserRole",
                Id=role_id,
                Name=name,
                ParentRoleId=roles.get(sharing.parents.get(name) or ""),
            )
            for name, role_id in roles.items()
        ]
    if kind == "PermissionSet":
        return [
            _row(
                "PermissionSet",
                Id=PROFILE_SET,
                Name="X00ex000000Standard",
                PermissionsModifyAllData=False,
                PermissionsViewAllData=False,
            ),
            _row(
                "PermissionSet",
                Id=ADMIN_SET,
                Name="X00ex000000Admin",
                PermissionsModifyAllData=True,
                PermissionsViewAllData=True,
            ),
        ]
    assert kind == "PermissionSetAssignment", kind
    admins = sharing.modify_all | {ADMIN_USER_ID}
    return [
        _row(
            "PermissionSetAssignment",
            Id=make_id("0Pa", number),
            AssigneeId=user["Id"],
            PermissionSetId=ADMIN_SET if user["Id"] in admins else PROFILE_SET,
        )
        for number, user in enumerate(everyone, start=1)
    ]
