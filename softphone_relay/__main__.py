"""``python -m softphone_relay``: the same as the ``softphone-relay`` command."""

import sys

from softphone_relay.cli.main import main

sys.exit(main())
