"""softphone-relay: a durable relay between a contact-center softphone and a CRM (Salesforce).

This package is the composition root: the command line (``cli``), the operator tools over the
log (``ops``), the process settings read from the environment (``settings``) and the embedded
Redis-compatible server (``embedded``). Nothing imports it. The installed distribution holds
four import packages, in dependency order::

    relay/            the relay service: wire protocol, the log's Redis model, the asyncio
                      server, the control API
    projections/      the worker framework, every consumer group, the sinks (Salesforce with its
                      stand-in) and the archive
    softphone_relay/  this package
    clientjs/         the wrapper library the relay serves to the softphone (package data)
"""
