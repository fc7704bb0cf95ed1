"""The start-up probe of the integration user's reach over the agents' Tasks: the verdict
(pure), then the probe against the stand-in's sharing, roles and permission sets."""

from __future__ import annotations

import logging

import pytest

from projections.outcomes import Done
from projections.salesforce.connect import SessionAuth
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.access import ActivitySharing
from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import WITH_KIT
from projections.salesforce.standin.server import StandIn, StandInState
from projections.salesforce.task_mapping import TaskMapping
from projections.salesforce.visibility import Reach, verdict
from tests.helpers import ConnectionFactory, call_record, conversation_ids, standin_user

USER = "005Hs00000ABCDeIAX"


def reach(**fields: object) -> Reach:
    values: dict[str, object] = {
        "user_id": USER,
        "modify_all_data": False,
        "view_all_data": False,
        "role": None,
        "role_is_top": False,
    }
    return Reach(**(values | fields))  # type: ignore[arg-type]


def test_modify_all_data_reaches_every_task() -> None:
    assert verdict(reach(modify_all_data=True, view_all_data=True)).sees_agents_tasks


def test_the_top_role_reaches_the_agents_below_it() -> None:
    found = verdict(reach(role="CEO", role_is_top=True))
    assert found.sees_agents_tasks and "not of agents in that same role" in found.reason


def test_a_role_under_another_may_miss_agents_elsewhere() -> None:
    found = verdict(reach(role="Support Lead"))
    assert not found.sees_agents_tasks
    assert "roles below 'Support Lead'" in found.reason and "top role" in found.reason


def test_view_all_data_reads_but_cannot_edit() -> None:
    found = verdict(reach(view_all_data=True))
    assert not found.sees_agents_tasks and "cannot edit" in found.reason


def test_no_role_and_no_modify_all_data_sees_no_agents_task() -> None:
    found = verdict(reach())
    assert not found.sees_agents_tasks and "cannot see any agent's Task" in found.reason


@pytest.fixture
def standin_state() -> StandInState:
    """An org with the kit, a CEO over the support lead over the agents, and sharing on."""
    org = Org(WITH_KIT)
    org.sharing = ActivitySharing(
        parents={"Agent": "Support Lead", "Support Lead": "CEO", "CEO": None}
    )
    return StandInState(org=org)


async def write_a_call(
    standin: StandIn, connection: ConnectionFactory, integration: str | None
) -> SalesforceSink:
    """One call by an agent, written by a sink running as ``integration`` (None: a session
    with no user of its own, an administrator's)."""
    agent = standin_user(standin, "agent", "Agent")
    session = standin.state.new_session(integration)
    writer = SalesforceSink(connection(SessionAuth(standin.instance_url, session)), TaskMapping())
    (call,) = conversation_ids(1)
    assert await writer.write([call_record(call, ownerId=agent)]) == {call: Done()}
    return writer


def visibility_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.getMessage().startswith("event=task_visibility")
    ]


@pytest.mark.parametrize(
    ("role", "modify_all", "level", "sees"),
    [
        (None, False, logging.WARNING, "false"),
        ("Support Lead", False, logging.WARNING, "false"),
        ("CEO", False, logging.INFO, "true"),
        (None, True, logging.INFO, "true"),
    ],
    ids=["no-role", "middle-role", "top-role", "modify-all-data"],
)
async def test_the_first_write_logs_one_line_on_the_integration_users_reach(
    standin: StandIn,
    connection: ConnectionFactory,
    caplog: pytest.LogCaptureFixture,
    role: str | None,
    modify_all: bool,
    level: int,
    sees: str,
) -> None:
    """The probe reads the user (UserInfo), its permission sets and its role as the org
    holds them, and says in one line whether the agents' Tasks are within its reach."""
    integration = standin_user(standin, "integration", role)
    if modify_all:
        assert standin.state.org.sharing is not None
        standin.state.org.sharing.modify_all.add(integration)
    with caplog.at_level(logging.INFO, logger="projections.salesforce.visibility"):
        await write_a_call(standin, connection, integration)
    ((logged_level, line),) = visibility_lines(caplog)
    assert logged_level == level
    assert f"user={integration}" in line and f"sees_agents_tasks={sees}" in line


async def test_a_session_of_the_admin_sees_everything(
    standin: StandIn, connection: ConnectionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A login's session runs as an administrator: Modify All Data."""
    with caplog.at_level(logging.INFO, logger="projections.salesforce.visibility"):
        await write_a_call(standin, connection, None)
    ((level, line),) = visibility_lines(caplog)
    assert level == logging.INFO and "Modify All Data" in line


async def test_the_probe_runs_once_per_sink(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """Later writes ask nothing more: one UserInfo request and four queries in all."""
    writer = await write_a_call(standin, connection, standin_user(standin, "integration", "CEO"))
    (call,) = conversation_ids(1)
    await writer.write([call_record(call, ownerId=standin_user(standin, "agent2", "Agent"))])
    paths = [path for _, path in standin.state.requests]
    assert paths.count("/services/oauth2/userinfo") == 1
    probes = [q for q in standin.state.queries if "PermissionSet" in q or "Role" in q]
    assert len(probes) == 4  # the assignments, the sets, the user's role id, the role


async def test_an_org_that_will_not_say_is_logged_and_the_call_is_still_written(
    standin: StandIn, connection: ConnectionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A query the org refuses (here: an org without the object) leaves the verdict unknown,
    said once, and stops nothing."""
    standin.state.org.objects.pop("PermissionSetAssignment")
    with caplog.at_level(logging.INFO, logger="projections.salesforce.visibility"):
        await write_a_call(standin, connection, standin_user(standin, "integration", "CEO"))
    ((level, line),) = visibility_lines(caplog)
    assert level == logging.WARNING and line.startswith("event=task_visibility_unknown")
