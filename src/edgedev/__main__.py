import sys

from edgedev.cli import main

sys.exit(main())
