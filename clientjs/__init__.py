"""The wrapper library the softphone loads: ``softphone.js`` (classic script), ``softphone.mjs``
(module entry), ``softphone.d.ts`` (its types), ``contract.schema.json`` (generated from
:mod:`relay.wire.contract`) and ``demo.html``.

A Python package only so that the files ship as package data and the relay serves them through
``importlib.resources`` from the installed distribution; it holds no Python code. Its own tests
(Node's test runner, and ``tsc`` checking the script against its declarations) live in
``clientjs/test/`` and do not ship.
"""
