"""The kit's Salesforce Voice part (``salesforce-kit/voice``, its own package directory so that
Open CTI orgs, which have no VoiceCall, deploy without it) holds together: the vendor
information names the connector page, the page starts the relay's connector with a token from
its controller, the contact center names the vendor, the VoiceCall fields are the ones the
``voicecalls`` group writes, and the custom label is the one the connector's errors name."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import msgspec
import pytest

from projections.voice.projection import DISPOSITION_FIELD, NOTES_FIELD
from relay.wire.contract import CallNotesSubmitted

ROOT = Path(__file__).resolve().parent.parent.parent
KIT = ROOT / "salesforce-kit"
VOICE = KIT / "voice" / "main" / "default"
NS = {"md": "http://soap.sforce.com/2006/04/metadata"}


def metadata(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def text(root: ET.Element, path: str) -> str:
    return (root.findtext(path, namespaces=NS) or "").strip()


def texts(root: ET.Element, path: str) -> list[str]:
    return [(e.text or "").strip() for e in root.findall(path, NS)]


@pytest.fixture(scope="module")
def vendor() -> ET.Element:
    return metadata(
        VOICE
        / "ConversationVendorInformation"
        / "SoftphoneRelay.ConversationVendorInformation-meta.xml"
    )


def test_the_vendor_information_is_a_partner_telephony_vendor_whose_connector_is_the_kits_page(
    vendor: ET.Element,
) -> None:
    assert text(vendor, "md:vendorType") == "ServiceCloudVoicePartner"
    url = text(vendor, "md:connectorUrl")
    assert url == "/apex/SoftphoneRelayConnector"
    assert (VOICE / "pages" / f"{url.removeprefix('/apex/')}.page").is_file()


def test_the_contact_center_names_the_vendor_and_holds_a_certificate_item(
    vendor: ET.Element,
) -> None:
    """Import format of Partner Telephony contact centers: reqGeneralInfo (internal and display
    names, ``c__`` + the vendor's developer name) and reqHvcc (the certificate)."""
    root = ET.parse(KIT / "callcenter" / "SoftphoneRelayContactCenter.xml").getroot()
    assert root.tag == "callCenter"
    items = {
        (section.get("name"), item.get("name")): (item.text or "").strip()
        for section in root.iter("section")
        for item in section.iter("item")
    }
    assert items[("reqGeneralInfo", "reqVendorInfoApiName")] == "c__" + text(
        vendor, "md:developerName"
    )
    assert re.fullmatch(r"[A-Za-z0-9]{1,40}", items[("reqGeneralInfo", "reqInternalName")])
    assert items[("reqGeneralInfo", "reqDisplayName")]
    certificate = items[("reqHvcc", "reqTelephonyIntegrationCertificate")]
    assert certificate.startswith("-----BEGIN CERTIFICATE-----")
    assert certificate.endswith("-----END CERTIFICATE-----")


def test_the_connector_page_starts_the_relays_connector_with_a_token_from_its_controller() -> None:
    page = (VOICE / "pages" / "SoftphoneRelayConnector.page").read_text()
    assert 'controller="SoftphoneRelayConnectorToken"' in page
    assert '<script src="{!HTMLENCODE(relayUrl)}/connector.js"></script>' in page
    assert "SoftphoneRelayConnector.start(" in page
    assert "{!$RemoteAction.SoftphoneRelayConnectorToken.mint}" in page
    assert '"/v1/socket"' in page
    source = (VOICE / "classes" / "SoftphoneRelayConnectorToken.cls").read_text()
    assert "global String relayUrl" in source and "global String labelNamespace" in source


def test_the_voice_call_fields_are_the_workers_and_hold_what_the_contract_allows() -> None:
    fields = VOICE / "objects" / "VoiceCall" / "fields"
    disposition = metadata(fields / f"{DISPOSITION_FIELD}.field-meta.xml")
    notes = metadata(fields / f"{NOTES_FIELD}.field-meta.xml")
    schema = msgspec.json.schema(CallNotesSubmitted)
    hook = schema["$defs"][schema["$ref"].rsplit("/", 1)[1]]["properties"]
    longest = {name: hook[name]["anyOf"][0]["maxLength"] for name in ("notes", "disposition")}
    assert text(notes, "md:type") == "LongTextArea"
    assert int(text(notes, "md:length")) >= longest["notes"]
    assert text(disposition, "md:type") == "Text"
    assert int(text(disposition, "md:length")) >= longest["disposition"]


def test_the_custom_label_is_the_one_the_connectors_errors_name() -> None:
    connector = (ROOT / "clientjs" / "connector" / "connector.mjs").read_text()
    named = re.search(r'USE_SOFTPHONE_LABEL = "(\w+)"', connector)
    assert named is not None
    labels = metadata(VOICE / "labels" / "CustomLabels.labels-meta.xml")
    assert texts(labels, "md:labels/md:fullName") == [named.group(1)]
    assert all(len(s) <= 80 for s in texts(labels, "md:labels/md:shortDescription"))


def test_voice_agents_may_open_the_connector_page_and_mint_through_it() -> None:
    agent = metadata(
        VOICE / "permissionsets" / "Softphone_Relay_Voice_Agent.permissionset-meta.xml"
    )
    assert texts(agent, "md:pageAccesses[md:enabled='true']/md:apexPage") == [
        "SoftphoneRelayConnector"
    ]
    assert texts(agent, "md:classAccesses[md:enabled='true']/md:apexClass") == [
        "SoftphoneRelayConnectorToken"
    ]


def test_the_voice_integration_user_may_write_the_disposition_and_notes() -> None:
    integration = metadata(
        VOICE / "permissionsets" / "Softphone_Relay_Voice_Integration.permissionset-meta.xml"
    )
    assert sorted(texts(integration, "md:fieldPermissions[md:editable='true']/md:field")) == [
        f"VoiceCall.{DISPOSITION_FIELD}",
        f"VoiceCall.{NOTES_FIELD}",
    ]
    assert texts(integration, "md:objectPermissions[md:allowEdit='true']/md:object") == [
        "VoiceCall"
    ]


def test_the_voice_part_is_its_own_package_directory_of_the_project() -> None:
    """Open CTI orgs deploy force-app alone; Voice orgs deploy both."""
    project = json.loads((KIT / "sfdx-project.json").read_text())
    assert [d["path"] for d in project["packageDirectories"]] == ["force-app", "voice"]
    assert not list((KIT / "force-app").rglob("*VoiceCall*"))
