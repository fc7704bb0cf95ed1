"""The ``voicecalls`` projection: inbound calls as VoiceCalls in Salesforce Voice, through its
Telephony Integration API (``projections/salesforce/telephony.py``)."""
