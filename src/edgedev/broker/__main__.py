"""``python -m edgedev.broker [--host H] [--port P]``: the same as ``edgedev broker``."""

from __future__ import annotations

import sys

from edgedev.cli import main

if __name__ == "__main__":
    sys.exit(main(["broker", *sys.argv[1:]]))
