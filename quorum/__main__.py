"""`python -m quorum`: the same command line as `quorum`."""

import sys

from quorum.cli.main import main

sys.exit(main())
