"""``up``'s Salesforce Voice: the stand-in's Telephony Integration API, wired to the
``voicecalls`` group with a key and certificate made for this run (the key in the data
directory, owner-only; the certificate uploaded to the stand-in's contact center)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from projections.salesforce.standin.server import StandIn
from projections.salesforce.telephony import new_contact_center_key

DEV_CALL_CENTER: Final = "Softphone_Relay_Dev"
DEV_NUMBER: Final = "+18005550100"
"""The development contact center's number (each VoiceCall's ``to``)."""


def dev_voice(data_dir: Path, standin: StandIn) -> dict[str, object]:
    """The ``SOFTPHONE_RELAY_TELEPHONY_*`` settings (by field) that point the ``voicecalls``
    group at the running stand-in, whose contact center now holds the certificate."""
    key, certificate = new_contact_center_key()
    key_file = data_dir / "telephony.key"
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(key)
    standin.state.telephony.certificates[DEV_CALL_CENTER] = certificate
    return {
        "telephony_url": standin.instance_url + "/telephony/v1",
        "telephony_org_id": standin.state.telephony.org_id,
        "telephony_call_center": DEV_CALL_CENTER,
        "telephony_key_file": str(key_file),
        "telephony_ca_file": str(standin.ca_file),
        "telephony_number": DEV_NUMBER,
    }
