"""``python -m personas_warehouse``: the same command line as ``personas-warehouse``."""

from __future__ import annotations

import sys

from personas_warehouse.cli import main

if __name__ == "__main__":
    sys.exit(main())
