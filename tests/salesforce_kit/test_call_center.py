"""The kit's call center definition has what Salesforce requires to import it ("Required Call
Center Elements" and the definition file's XML format, Open CTI Developer Guide)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

KIT = Path(__file__).resolve().parent.parent.parent / "salesforce-kit"
CALL_CENTER = KIT / "callcenter" / "SoftphoneRelayCallCenter.xml"

REQUIRED = {
    "reqGeneralInfo": [
        "reqInternalName",
        "reqDisplayName",
        "reqAdapterUrl",
        "reqUseApi",
        "reqSoftphoneHeight",
        "reqSoftphoneWidth",
        "reqSalesforceCompatibilityMode",
    ],
    "reqDialingOptions": ["reqOutsidePrefix", "reqLongDistPrefix", "reqInternationalPrefix"],
}
NAME = re.compile(r"^[A-Za-z0-9]{1,40}$")


@pytest.fixture(scope="module")
def root() -> ET.Element:
    """The parsed file."""
    return ET.parse(CALL_CENTER).getroot()


def items(root: ET.Element, section: str) -> dict[str, str]:
    (found,) = [s for s in root.iter("section") if s.get("name") == section]
    return {i.get("name", ""): (i.text or "").strip() for i in found.iter("item")}


def test_the_root_is_call_center(root: ET.Element) -> None:
    """An import file's root element is <callCenter>."""
    assert root.tag == "callCenter"


def test_every_required_item_is_there(root: ET.Element) -> None:
    """Each required section holds each required item."""
    for section, names in REQUIRED.items():
        assert set(names) <= set(items(root, section)), section


def test_internal_and_display_names_come_first(root: ET.Element) -> None:
    """reqInternalName is sortOrder 0 and reqDisplayName 1, which Salesforce does not let move."""
    general = next(s for s in root.iter("section") if s.get("name") == "reqGeneralInfo")
    order = {i.get("name"): i.get("sortOrder") for i in general.iter("item")}
    assert (order["reqInternalName"], order["reqDisplayName"]) == ("0", "1")


def test_sort_orders_run_from_zero_without_gaps(root: ET.Element) -> None:
    """Within the file and within each section, sortOrder is 0..n."""
    sections = list(root.iter("section"))
    assert sorted(int(s.get("sortOrder", "-1")) for s in sections) == list(range(len(sections)))
    for section in sections:
        orders = sorted(int(i.get("sortOrder", "-1")) for i in section.iter("item"))
        assert orders == list(range(len(orders))), section.get("name")


def test_names_are_short_alphanumeric_and_only_salesforces_begin_with_req(
    root: ET.Element,
) -> None:
    """Names are at most 40 letters and digits; our own items do not use the reserved prefix."""
    for element in [*root.iter("section"), *root.iter("item")]:
        name = element.get("name", "")
        assert NAME.match(name), name
        assert element.get("label"), name
    assert not any(n.startswith("req") for n in items(root, "softphoneRelay"))


def test_the_softphone_loads_in_lightning_over_https(root: ET.Element) -> None:
    """Lightning mode (the default is Classic), an https adapter URL and a usable size."""
    general = items(root, "reqGeneralInfo")
    assert general["reqSalesforceCompatibilityMode"] == "Lightning"
    assert general["reqAdapterUrl"].startswith("https://")
    assert general["reqUseApi"] == "true"
    assert 200 <= int(general["reqSoftphoneHeight"]) <= 1000
    assert 200 <= int(general["reqSoftphoneWidth"]) <= 1000


def test_the_relay_items_name_the_token_class_of_the_kit(root: ET.Element) -> None:
    """The token class and method the call center names are the kit's Apex."""
    relay = items(root, "softphoneRelay")
    source = (KIT / "force-app/main/default/classes" / f"{relay['tokenApexClass']}.cls").read_text()
    assert f"webService static String {relay['tokenApexMethod']}()" in source
    assert relay["relayUrl"].startswith("wss://")
