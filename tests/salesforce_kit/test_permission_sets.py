"""The kit's permission sets grant what each user needs and name only what the kit (or the
platform) has: a permission set naming a class or setting that does not exist fails the
whole deploy (Metadata API, PermissionSet)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

KIT = Path(__file__).resolve().parent.parent.parent / "salesforce-kit"
DEFAULT = KIT / "force-app" / "main" / "default"
NS = {"md": "http://soap.sforce.com/2006/04/metadata"}


def permission_set(name: str) -> ET.Element:
    return ET.parse(DEFAULT / "permissionsets" / f"{name}.permissionset-meta.xml").getroot()


def texts(root: ET.Element, path: str) -> list[str]:
    return [element.text or "" for element in root.findall(path, NS)]


def test_agents_may_run_both_apex_classes_a_flow_or_runapex_calls() -> None:
    """The token class (runApex) and the dial action (a Flow's running user needs it too)."""
    agent = permission_set("Softphone_Relay_Agent")
    granted = texts(agent, "md:classAccesses[md:enabled='true']/md:apexClass")
    assert sorted(granted) == ["SoftphoneRelayDial", "SoftphoneRelayToken"]


def test_agents_may_read_the_custom_setting() -> None:
    agent = permission_set("Softphone_Relay_Agent")
    assert texts(agent, "md:customSettingAccesses[md:enabled='true']/md:name") == [
        "Softphone_Relay_Settings__c"
    ]


@pytest.mark.parametrize("name", ["Softphone_Relay_Agent", "Softphone_Relay_Integration"])
def test_every_class_and_setting_a_permission_set_names_is_in_the_kit(name: str) -> None:
    root = permission_set(name)
    for apex_class in texts(root, "md:classAccesses/md:apexClass"):
        assert (DEFAULT / "classes" / f"{apex_class}.cls").is_file(), apex_class
    for setting in texts(root, "md:customSettingAccesses/md:name"):
        assert (DEFAULT / "objects" / setting).is_dir(), setting
    assert texts(root, "md:label") and texts(root, "md:hasActivationRequired") == ["false"]


def test_the_integration_user_gets_the_api_tasks_and_read_access_to_callers() -> None:
    """What the workers call: REST (ApiEnabled), Task create and update (EditTask), and the
    caller search over Contacts and Leads."""
    integration = permission_set("Softphone_Relay_Integration")
    assert sorted(texts(integration, "md:userPermissions[md:enabled='true']/md:name")) == [
        "ApiEnabled",
        "EditTask",
    ]
    readable = texts(integration, "md:objectPermissions[md:allowRead='true']/md:object")
    assert sorted(readable) == ["Contact", "Lead"]


def test_the_call_key_field_is_a_unique_case_sensitive_external_id_on_activity() -> None:
    """What keeps one Task per call: External ID (looked up and upserted by), Unique (a second
    Task for the call is refused), case-sensitive (conversation ids differ by case)."""
    field = ET.parse(
        DEFAULT / "objects" / "Activity" / "fields" / "Softphone_Call_Id__c.field-meta.xml"
    ).getroot()
    values = {
        name: texts(field, f"md:{name}") for name in ("externalId", "unique", "caseSensitive")
    }
    assert values == {"externalId": ["true"], "unique": ["true"], "caseSensitive": ["true"]}
    assert texts(field, "md:type") == ["Text"] and int(texts(field, "md:length")[0]) >= 128


def test_the_integration_user_may_write_the_call_key_field() -> None:
    integration = permission_set("Softphone_Relay_Integration")
    writable = texts(integration, "md:fieldPermissions[md:editable='true']/md:field")
    assert writable == ["Task.Softphone_Call_Id__c"]
