"""softphone-relay: a durable relay between a contact-center softphone and a CRM (Salesforce).

The packages, in dependency order (each imports only those above it)::

    relay/        the relay core: the softphone contract, wire frames and session (pure); the
                  websocket shell, the event log, command streams and delivery, settings, tokens,
                  Redis key names, the embedded Redis-compatible server
    control/      the control API: click-to-dial and presence requests from server-side callers
    projections/  the worker framework (consumer groups, settle policy, group registry) and each
                  projection as a pure ``fold`` plus its ``projection`` shell
    salesforce/   the Salesforce integration (sink, logins, API-limit pacing, Task mapping, caller
                  matching, picklists) and its local stand-in
    ops/          the operator tools over the log: status, log reading, replay, retention, dead
                  letters
    cli/          the command line, the composition root: one module per command group
    clientjs/     the wrapper library the relay serves to the softphone (package data)
"""
