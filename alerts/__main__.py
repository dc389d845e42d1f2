"""``python -m alerts``: the ``alerts`` command (how a script starts its detached relay)."""

import sys

from alerts.cli import main

sys.exit(main())
