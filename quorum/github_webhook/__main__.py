"""`python -m quorum.github_webhook`: the GitHub webhook receiver (see quorum.github_webhook.server)."""

import sys

from quorum.github_webhook.server import main

sys.exit(main())
