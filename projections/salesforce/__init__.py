"""The Salesforce integration: the batched, idempotent sink that writes call records as Tasks
(``sink``), logins and settings (``connect``), daily API-limit pacing (``limits``), call record to
fields (``task_mapping``), caller matching (``callers``), disposition picklists (``picklists``),
and ``standin/``: a local org that validates and fails like Salesforce, for ``up`` and the tests.
"""
