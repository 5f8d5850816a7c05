"""``python -m ivr``: the same entry point as the ``ivr`` console script."""

from __future__ import annotations

import sys

from ivr.cli import main

sys.exit(main())
