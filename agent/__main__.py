"""`python -m agent`: the command line (see agent.cli)."""

import sys

from agent.cli import main

sys.exit(main())
