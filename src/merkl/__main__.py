"""`python -m merkl` is the `merkl` command."""

import sys

from merkl.cli import main

sys.exit(main())
